/* service.h: the life cycle every executable shares: one event base, the
 * metrics registry, the HTTP server listening on the configured address,
 * SIGINT/SIGTERM handling and a graceful shutdown (stop accepting, let the
 * in-flight requests finish within a bound, run the service's stop hook,
 * leave the loop). main() owns the struct svc and decides the exit code. */
#ifndef SVC_CORE_SERVICE_H
#define SVC_CORE_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct event;

struct event_base;
struct hs_server;
struct mtr_registry;

/* Called once when shutdown begins (before the server stops accepting). */
typedef void (*svc_stop_fn)(void *arg);
/* Asked during the drain: how much work of the service's own is still in
 * flight (outgoing calls, buffered writes). Shutdown waits for 0. */
typedef size_t (*svc_busy_fn)(void *arg);

struct svc {
    const char *name;             /* borrowed: service name for logs */
    struct event_base *base;      /* owned */
    struct mtr_registry *metrics; /* owned */
    struct hs_server *http;       /* owned */
    int port;                     /* the port actually bound */
    int64_t grace_ms;             /* bound on the drain */
    svc_stop_fn on_stop;
    svc_busy_fn busy;
    void *hook_arg;
    struct event *sigint, *sigterm, *drain_timer; /* owned */
    int64_t drain_deadline_ms;
    int stopping;
};

struct cfg_option;
struct cfg_common;

/* The start of every main: name the log lines after name, parse the options
 * (flags over environment), set the log level from c. Returns -1 when the
 * service should go on, else the exit code (0 after --help/--version, 2 after
 * a bad option, with one line on stderr). */
int svc_configure(const char *name, const char *summary, const struct cfg_option *opts, size_t n,
                  int argc, char **argv, const struct cfg_common *c)
    __attribute__((warn_unused_result));

/* Create the base, metrics and server (routes are added by the caller
 * before or after svc_listen). Logging must be initialised. Returns 0, or -1
 * with err filled; svc_free cleans up either way. */
int svc_init(struct svc *s, const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Listen on bind:port and log "listening on http://HOST:PORT". 0 or -1. */
int svc_listen(struct svc *s, const char *bind, long port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Run the loop until a signal has drained the service (or svc_shutdown).
 * Returns 0 after a clean drain, 1 if the grace period ran out. */
int svc_run(struct svc *s);

/* Begin a graceful shutdown as if a signal had arrived. */
void svc_shutdown(struct svc *s);

/* Free in reverse order of creation. Accepts a zeroed struct. */
void svc_free(struct svc *s);

/* Monotonic milliseconds (for timers and elapsed times). */
int64_t svc_now_ms(void);

/* Wall-clock milliseconds since the Unix epoch (for timestamps). */
int64_t svc_wall_ms(void);

/* event_add ev (borrowed; a timer or a persistent timer) to fire after ms
 * milliseconds, a negative ms counting as 0. Returns event_add's 0 or -1. */
int svc_timer_in(struct event *ev, int64_t ms);

#endif

/* service.h: the life of every executable: one event base, the metrics
 * registry, the HTTP server listening on the configured address,
 * SIGINT/SIGTERM handling and a graceful shutdown: run the stop hooks (in
 * reverse order of registration, so what was set up last stops first), stop
 * accepting, end open streams, let the in-flight requests and the work the
 * busy hooks report finish within a bound, leave the loop. main() owns the
 * struct svc and decides the exit code. */
#ifndef SVC_HTTP_SERVICE_H
#define SVC_HTTP_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct hs_server;
struct mtr_registry;
struct svc;
struct cfg_option;
struct cfg_common;

/* Called once when shutdown begins, before the server stops accepting. */
typedef void (*svc_stop_fn)(void *arg);
/* Asked during the drain: how much work of the caller's own is still in
 * flight (outgoing calls, buffered writes). Shutdown waits for 0. */
typedef size_t (*svc_busy_fn)(void *arg);

#define SVC_HOOKS_MAX 16 /* stop hooks, and busy hooks, per service */

/* The start of every main: name the log lines after name, parse the options
 * (flags over environment), set the log level from c. Returns -1 when the
 * service should go on, else the exit code (0 after --help/--version, 2 after
 * a bad option, with one line on stderr). */
int svc_configure(const char *name, const char *summary, const struct cfg_option *opts, size_t n,
                  int argc, char **argv, const struct cfg_common *c)
    __attribute__((warn_unused_result));

/* Create the base, metrics and server of service name (borrowed; a literal
 * or something that outlives the service). Routes are added before or after
 * svc_listen. Logging must be initialised. Returns the service (caller frees
 * with svc_free), or NULL with err filled. */
struct svc *svc_new(const char *name, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Free in reverse order of creation. Accepts NULL. */
void svc_free(struct svc *s);

/* Listen on bind:port and log "listening on http://HOST:PORT". 0 or -1. */
int svc_listen(struct svc *s, const char *bind, long port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Add a stop hook or a busy hook; fn and arg are borrowed and arg must stay
 * valid until svc_remove_hooks(s, arg) or svc_free. 0, or -1 when
 * SVC_HOOKS_MAX hooks of that kind are registered. */
int svc_on_stop(struct svc *s, svc_stop_fn fn, void *arg) __attribute__((warn_unused_result));
int svc_on_busy(struct svc *s, svc_busy_fn fn, void *arg) __attribute__((warn_unused_result));
/* Forget every hook registered with arg (for an owner freed before s). */
void svc_remove_hooks(struct svc *s, const void *arg);

/* Work in flight that the busy hooks report now (the drain waits for 0). */
size_t svc_busy(const struct svc *s);

/* Bound the drain of a shutdown to ms (default LIM_SHUTDOWN_GRACE_MS). */
void svc_set_grace_ms(struct svc *s, int64_t ms);

/* Run the loop until a signal has drained the service (or svc_shutdown).
 * Returns 0 after a clean drain, 1 if the grace period ran out. */
int svc_run(struct svc *s);

/* Begin a graceful shutdown as if a signal had arrived. */
void svc_shutdown(struct svc *s);

/* Borrowed parts of s, valid until svc_free. */
struct event_base *svc_base(const struct svc *s);
struct hs_server *svc_http(const struct svc *s);
struct mtr_registry *svc_metrics(const struct svc *s);
const char *svc_name(const struct svc *s);
/* The port actually bound (0 before svc_listen). */
int svc_port(const struct svc *s);

#endif

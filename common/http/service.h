/* service.h: the life of every executable: one event base, the metrics
 * registry, the HTTP server listening on the configured address,
 * SIGINT/SIGTERM handling and a graceful shutdown: optionally a pre-stop
 * phase first (the drain hooks run, then the service keeps serving for the
 * drain delay, so that callers move off it), then run the stop hooks (in
 * reverse order of registration, so what was set up last stops first), stop
 * accepting, end open streams, let the in-flight requests and the work the
 * busy hooks report finish within a bound, leave the loop. A signal during
 * the delay ends the delay; one after it leaves at once. Without a drain
 * delay (the default) the stop hooks run as soon as the signal arrives.
 * main() owns the struct svc and decides the exit code. */
#ifndef SVC_HTTP_SERVICE_H
#define SVC_HTTP_SERVICE_H

#include <stdbool.h>
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
/* Called once when shutdown begins, before the drain delay, with that
 * delay (ms, > 0): start whatever moves callers off the service (it keeps
 * serving meanwhile). Returns true when the delay is worth waiting for;
 * the delay runs when some drain hook says so. */
typedef bool (*svc_drain_fn)(void *arg, int64_t delay_ms);
/* Asked during the drain: how much work of the caller's own is still in
 * flight (outgoing calls, buffered writes). Shutdown waits for 0. */
typedef size_t (*svc_busy_fn)(void *arg);

#define SVC_HOOKS_MAX 16 /* drain, stop and busy hooks (each kind) per service */

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

/* Add a drain, stop or busy hook; fn and arg are borrowed and arg must
 * stay valid until svc_remove_hooks(s, arg) or svc_free. 0, or -1 when
 * SVC_HOOKS_MAX hooks of that kind are registered. Drain hooks run in
 * order of registration, and only when a drain delay is set. */
int svc_on_drain(struct svc *s, svc_drain_fn fn, void *arg) __attribute__((warn_unused_result));
int svc_on_stop(struct svc *s, svc_stop_fn fn, void *arg) __attribute__((warn_unused_result));
int svc_on_busy(struct svc *s, svc_busy_fn fn, void *arg) __attribute__((warn_unused_result));
/* Forget every hook registered with arg (for an owner freed before s). */
void svc_remove_hooks(struct svc *s, const void *arg);

/* Work in flight that the busy hooks report now (the drain waits for 0). */
size_t svc_busy(const struct svc *s);

/* Bound the drain of a shutdown to ms (default LIM_SHUTDOWN_GRACE_MS). */
void svc_set_grace_ms(struct svc *s, int64_t ms);

/* Serve for ms after the signal before the stop hooks run (default 0:
 * none; the drain hooks do not run then). Set before the loop runs. */
void svc_set_drain_delay(struct svc *s, int64_t ms);

/* Whether the shutdown is in its drain delay now. */
bool svc_delaying(const struct svc *s);

/* Run the loop until a signal has drained the service (or svc_shutdown).
 * Returns 0 after a clean drain, 1 if the grace period ran out. */
int svc_run(struct svc *s);

/* Begin a graceful shutdown as if a signal had arrived; called again
 * during the drain delay, end the delay now (as a second signal does). */
void svc_shutdown(struct svc *s);

/* Borrowed parts of s, valid until svc_free. */
struct event_base *svc_base(const struct svc *s);
struct hs_server *svc_http(const struct svc *s);
struct mtr_registry *svc_metrics(const struct svc *s);
const char *svc_name(const struct svc *s);
/* The port actually bound (0 before svc_listen). */
int svc_port(const struct svc *s);

#endif

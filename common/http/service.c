/* service.c: start-up, signal handling and graceful shutdown shared by all
 * executables (see service.h). The HTTP server is the first thing made and
 * the last thing stopped: svc_shutdown runs the hooks of what was built on
 * top of it first, then stops accepting. With a drain delay, a pre-stop
 * phase comes first: the drain hooks run and a timer holds the stop for
 * the delay while the server goes on serving. */
#include "http/service.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/server.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_DRAIN_POLL_MS 20

struct svc_drain_hook {
    svc_drain_fn fn;
    void *arg;
};

struct svc_stop_hook {
    svc_stop_fn fn;
    void *arg;
};

struct svc_busy_hook {
    svc_busy_fn fn;
    void *arg;
};

struct svc {
    const char *name;             /* borrowed: service name for logs */
    struct event_base *base;      /* owned */
    struct mtr_registry *metrics; /* owned */
    struct hs_server *http;       /* owned */
    int port;                     /* the port actually bound */
    int64_t grace_ms;             /* bound on the drain */
    int64_t delay_ms;             /* drain delay before the stop (0: none) */
    struct svc_drain_hook drains[SVC_HOOKS_MAX];
    struct svc_stop_hook stops[SVC_HOOKS_MAX];
    struct svc_busy_hook busies[SVC_HOOKS_MAX];
    int ndrains, nstops, nbusies;
    struct event *sigint, *sigterm, *drain_timer, *delay_timer; /* owned */
    int64_t drain_deadline_ms;
    bool delay_begun; /* the pre-stop phase ran (or was passed by) */
    bool delaying;    /* in the drain delay now */
    int stopping;     /* 0 running, 1 draining, 2 leaving without a clean drain */
};

size_t svc_busy(const struct svc *s)
{
    size_t n = 0;
    int i;

    for (i = 0; i < s->nbusies; i++)
        n += s->busies[i].fn(s->busies[i].arg);
    return n;
}

/* Drain timer: leave the loop once nothing is in flight or time is up. */
static void svc_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *s = arg;
    size_t requests = hs_inflight(s->http) + hs_writing(s->http);
    size_t own = svc_busy(s);

    (void)fd;
    (void)what;
    if (requests == 0 && own == 0) {
        log_info("drained; exiting");
        event_base_loopexit(s->base, NULL);
        return;
    }
    if (clk_now_ms() >= s->drain_deadline_ms) {
        log_warn("grace period of %lld ms over with %zu requests and %zu calls in flight; exiting",
                 (long long)s->grace_ms, requests, own);
        s->stopping = 2;
        event_base_loopexit(s->base, NULL);
        return;
    }
    clk_timer_in(s->drain_timer, SVC_DRAIN_POLL_MS);
}

/* The stop proper: stop hooks, stop accepting, drain. */
static void svc_stop(struct svc *s)
{
    int i;

    s->delaying = false;
    evtimer_del(s->delay_timer);
    s->stopping = 1;
    for (i = s->nstops - 1; i >= 0; i--)
        s->stops[i].fn(s->stops[i].arg);
    hs_stop_accepting(s->http);
    s->drain_deadline_ms = clk_now_ms() + s->grace_ms;
    svc_drain_cb(-1, 0, s);
}

/* Delay timer: the drain delay is over. */
static void svc_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *s = arg;

    (void)fd;
    (void)what;
    if (!s->delaying)
        return;
    log_info("drain delay of %lld ms over; stopping", (long long)s->delay_ms);
    svc_stop(s);
}

/* Run the drain hooks (all of them) and say whether one wants the delay. */
static bool svc_run_drain_hooks(struct svc *s)
{
    bool wanted = false;
    int i;

    for (i = 0; i < s->ndrains; i++)
        if (s->drains[i].fn(s->drains[i].arg, s->delay_ms))
            wanted = true;
    return wanted;
}

void svc_shutdown(struct svc *s)
{
    if (s->stopping)
        return;
    if (s->delaying) {
        log_info("drain delay cut short; stopping");
        svc_stop(s);
        return;
    }
    if (!s->delay_begun) {
        s->delay_begun = true;
        if (s->delay_ms > 0 && svc_run_drain_hooks(s) && !s->stopping) {
            if (clk_timer_in(s->delay_timer, s->delay_ms) != 0) {
                log_warn("cannot arm the drain delay; stopping now");
                svc_stop(s);
                return;
            }
            s->delaying = true;
            log_info("serving for %lld ms before stopping (drain delay)", (long long)s->delay_ms);
            return;
        }
    }
    if (!s->stopping)
        svc_stop(s);
}

static void svc_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct svc *s = arg;

    (void)what;
    if (s->delaying) {
        log_info("%s again; ending the drain delay", sig == SIGINT ? "SIGINT" : "SIGTERM");
        svc_shutdown(s);
        return;
    }
    if (s->stopping) {
        log_warn("%s again; exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        s->stopping = 2;
        event_base_loopexit(s->base, NULL);
        return;
    }
    log_info("%s received; shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    svc_shutdown(s);
}

/* An event base with epoll's changelist on: a request that toggles read and
 * write interest on its socket costs one epoll_ctl per loop turn instead of
 * several (measured: about a fifth more requests per second). */
static struct event_base *svc_base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int svc_configure(const char *name, const char *summary, const struct cfg_option *opts, size_t n,
                  int argc, char **argv, const struct cfg_common *c)
{
    char err[512];

    log_init(name);
    switch (cfg_parse(name, summary, opts, n, argc, argv, stdout, err, sizeof(err))) {
    case CFG_EXIT:
        return 0;
    case CFG_ERROR:
        fprintf(stderr, "%s: %s (see --help)\n", name, err);
        return 2;
    case CFG_OK:
        break;
    }
    if (log_set_level_name(c->log_level) != 0) {
        fprintf(stderr, "%s: --log-level: unknown level '%s' (debug, info, warn, error)\n", name,
                c->log_level);
        return 2;
    }
    return -1;
}

struct svc *svc_new(const char *name, char *err, size_t errlen)
{
    struct svc *s = calloc(1, sizeof(*s));

    if (!s) {
        errbuf_set(err, errlen, "out of memory");
        return NULL;
    }
    s->name = name;
    s->grace_ms = LIM_SHUTDOWN_GRACE_MS;
    signal(SIGPIPE, SIG_IGN);
    s->base = svc_base_new();
    s->metrics = mtr_new();
    if (!s->base || !s->metrics)
        goto fail;
    s->http = hs_server_new(s->base, name, NULL, s->metrics);
    s->sigint = evsignal_new(s->base, SIGINT, svc_signal_cb, s);
    s->sigterm = evsignal_new(s->base, SIGTERM, svc_signal_cb, s);
    s->drain_timer = evtimer_new(s->base, svc_drain_cb, s);
    s->delay_timer = evtimer_new(s->base, svc_delay_cb, s);
    if (!s->http || !s->sigint || !s->sigterm || !s->drain_timer || !s->delay_timer)
        goto fail;
    if (evsignal_add(s->sigint, NULL) != 0 || evsignal_add(s->sigterm, NULL) != 0)
        goto fail;
    return s;
fail:
    errbuf_set(err, errlen, "cannot initialise the event loop");
    svc_free(s);
    return NULL;
}

int svc_listen(struct svc *s, const char *bind, long port, char *err, size_t errlen)
{
    int bound = 0;

    if (hs_listen(s->http, bind, (int)port, &bound, err, errlen) != 0)
        return -1;
    s->port = bound;
    if (strchr(bind, ':'))
        log_info("listening on http://[%s]:%d", bind, bound);
    else
        log_info("listening on http://%s:%d", bind, bound);
    return 0;
}

int svc_on_drain(struct svc *s, svc_drain_fn fn, void *arg)
{
    if (s->ndrains == SVC_HOOKS_MAX)
        return -1;
    s->drains[s->ndrains].fn = fn;
    s->drains[s->ndrains].arg = arg;
    s->ndrains++;
    return 0;
}

int svc_on_stop(struct svc *s, svc_stop_fn fn, void *arg)
{
    if (s->nstops == SVC_HOOKS_MAX)
        return -1;
    s->stops[s->nstops].fn = fn;
    s->stops[s->nstops].arg = arg;
    s->nstops++;
    return 0;
}

int svc_on_busy(struct svc *s, svc_busy_fn fn, void *arg)
{
    if (s->nbusies == SVC_HOOKS_MAX)
        return -1;
    s->busies[s->nbusies].fn = fn;
    s->busies[s->nbusies].arg = arg;
    s->nbusies++;
    return 0;
}

void svc_remove_hooks(struct svc *s, const void *arg)
{
    int i, n = 0;

    if (!s)
        return;
    for (i = 0; i < s->ndrains; i++)
        if (s->drains[i].arg != arg)
            s->drains[n++] = s->drains[i];
    s->ndrains = n;
    n = 0;
    for (i = 0; i < s->nstops; i++)
        if (s->stops[i].arg != arg)
            s->stops[n++] = s->stops[i];
    s->nstops = n;
    n = 0;
    for (i = 0; i < s->nbusies; i++)
        if (s->busies[i].arg != arg)
            s->busies[n++] = s->busies[i];
    s->nbusies = n;
}

void svc_set_grace_ms(struct svc *s, int64_t ms) { s->grace_ms = ms; }

void svc_set_drain_delay(struct svc *s, int64_t ms) { s->delay_ms = ms > 0 ? ms : 0; }

bool svc_delaying(const struct svc *s) { return s->delaying; }

int svc_run(struct svc *s)
{
    event_base_dispatch(s->base);
    return s->stopping == 2 ? 1 : 0;
}

void svc_free(struct svc *s)
{
    if (!s)
        return;
    if (s->drain_timer)
        event_free(s->drain_timer);
    if (s->delay_timer)
        event_free(s->delay_timer);
    if (s->sigint)
        event_free(s->sigint);
    if (s->sigterm)
        event_free(s->sigterm);
    hs_server_free(s->http);
    mtr_free(s->metrics);
    if (s->base)
        event_base_free(s->base);
    free(s);
}

struct event_base *svc_base(const struct svc *s) { return s->base; }
struct hs_server *svc_http(const struct svc *s) { return s->http; }
struct mtr_registry *svc_metrics(const struct svc *s) { return s->metrics; }
const char *svc_name(const struct svc *s) { return s->name; }
int svc_port(const struct svc *s) { return s->port; }

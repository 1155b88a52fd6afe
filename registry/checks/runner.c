/* runner.c: the active health-check runner (see runner.h).
 *
 * Every probe owns two timers: its schedule (armed for the next due time)
 * and, for a TCP run, the run's deadline. An HTTP run goes through the
 * runner's own hc_client with the probe's timeout as the whole-transfer
 * (and connect) timeout; a TCP run is a bufferevent connect, through evdns
 * when the target names a host. Probes live in a uthash table keyed by
 * "instance_id NUL check_id", and each instance keeps the list of its
 * probes, so removing an instance touches only those.
 *
 * A report may remove or replace its own probe: the probe whose report is
 * running (crun.reporting) is then only unlinked and marked dead, and freed
 * once its report returns, so the ids the report borrowed stay valid. */
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

#include "core/clock.h"
#include "http/client.h"

struct crun_inst;

/* Where a probe goes, parsed once by crun_target_parse. */
struct crun_target {
    enum crun_kind kind;
    char *text;                 /* owned: the target as given (URL or HOST:PORT) */
    char *host;                 /* owned; CRUN_TCP with a host name only, else NULL */
    uint16_t port;              /* CRUN_TCP */
    struct sockaddr_storage sa; /* CRUN_TCP with an IP literal */
    int salen;                  /* 0: resolve host */
};

struct crun_probe {
    UT_hash_handle hh;       /* in crun.probes, keyed by key[0..keylen) */
    char *key;               /* owned: instance_id NUL check_id NUL */
    size_t keylen;           /* strlen(instance_id) + 1 + strlen(check_id) */
    const char *instance_id; /* into key */
    const char *check_id;    /* into key */
    struct crun *c;
    struct crun_inst *inst;                   /* the instance's list holding it */
    struct crun_probe *inst_prev, *inst_next; /* in inst->probes */
    struct crun_target t;
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t due_ms;          /* monotonic ms of the next scheduled run */
    struct event *timer;     /* the schedule; owned */
    struct event *deadline;  /* a TCP run's timeout; owned */
    struct hc_call *call;    /* the HTTP run in flight, or NULL */
    struct bufferevent *bev; /* the TCP run in flight, or NULL; owned */
    int inflight;            /* a run was started and has not finished */
    int dead;                /* unlinked during its own report: free after */
};

/* The probes of one instance. */
struct crun_inst {
    UT_hash_handle hh;         /* in crun.insts, keyed by id */
    char *id;                  /* owned */
    struct crun_probe *probes; /* utlist list through inst_prev/inst_next */
};

struct crun {
    struct event_base *base; /* borrowed */
    struct hc_client *hc;    /* owned; NULL until the first HTTP probe */
    struct evdns_base *dns;  /* owned; made at the first host name run */
    crun_report_fn report;
    void *arg;
    struct crun_probe *probes; /* uthash head */
    struct crun_inst *insts;   /* uthash head */
    size_t count;
    size_t inflight;
    uint64_t rng;                 /* splitmix64 state */
    struct crun_probe *reporting; /* the probe whose report is running */
    struct crun_stats stats;
};

/* ---- small helpers ---- */

/* The next pseudo-random 64-bit number (splitmix64). */
static uint64_t crun_rand(struct crun *c)
{
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for 0 < n <= CRUN_MS_MAX (the modulo bias, below
 * 2^-32, does not matter for spreading probes). */
static int64_t crun_rand_below(struct crun *c, int64_t n)
{
    return (int64_t)(crun_rand(c) % (uint64_t)n);
}

/* The reason phrase of a common status, or NULL. */
static const char *crun_reason(long status)
{
    static const struct {
        long status;
        const char *text;
    } table[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].status == status)
            return table[i].text;
    return NULL;
}

/* Append at most n bytes of s to out (length *len, capacity cap including
 * the NUL), keeping it NUL-terminated. */
static void crun_put(char *out, size_t *len, size_t cap, const char *s, size_t n)
{
    if (*len + 1 >= cap)
        return;
    if (n > cap - 1 - *len)
        n = cap - 1 - *len;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

/* Write "<verb> <target>: <detail>" into out (LIM_CHECK_OUTPUT_MAX + 1
 * bytes): the detail is kept whole (up to half the space) and the target
 * cut with "..." to fit; then every byte outside printable ASCII becomes
 * '?' (a URL or a resolver's text may hold any byte). */
static void crun_format(char out[LIM_CHECK_OUTPUT_MAX + 1], const char *verb, const char *target,
                        const char *detail)
{
    const size_t cap = LIM_CHECK_OUTPUT_MAX + 1;
    size_t len = 0;
    size_t vlen = strlen(verb);
    size_t tlen = strlen(target);
    size_t dlen = strlen(detail);
    size_t room;

    out[0] = '\0';
    if (dlen > LIM_CHECK_OUTPUT_MAX / 2)
        dlen = LIM_CHECK_OUTPUT_MAX / 2;
    room = LIM_CHECK_OUTPUT_MAX - vlen - 1 - 2 - dlen; /* for the target */
    crun_put(out, &len, cap, verb, vlen);
    crun_put(out, &len, cap, " ", 1);
    if (tlen > room) {
        crun_put(out, &len, cap, target, room - 3);
        crun_put(out, &len, cap, "...", 3);
    } else {
        crun_put(out, &len, cap, target, tlen);
    }
    crun_put(out, &len, cap, ": ", 2);
    crun_put(out, &len, cap, detail, dlen);
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)out[i];

        if (b < 0x20 || b > 0x7e)
            out[i] = '?';
    }
}

/* A short text for a socket error. */
static const char *crun_sock_error_text(int err)
{
    switch (err) {
    case 0:
        return "connection failed";
    case ECONNREFUSED:
        return "connection refused";
    case ENETUNREACH:
        return "network unreachable";
    case EHOSTUNREACH:
        return "host unreachable";
    case ETIMEDOUT:
        return "connection timed out";
    default:
        return evutil_socket_error_to_string(err);
    }
}

/* ---- targets ---- */

/* Free what t owns (not t). */
static void crun_target_clear(struct crun_target *t)
{
    free(t->text);
    free(t->host);
    t->text = NULL;
    t->host = NULL;
}

/* 1 when s starts with prefix, ignoring ASCII case. */
static int crun_has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* 1 when host[0..n) is a plausible DNS name. */
static int crun_host_name_ok(const char *host, size_t n)
{
    if (n == 0 || n > LIM_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return 0;
    }
    return 1;
}

/* Parse "HOST:PORT" ([IPv6]:PORT, IPv4:PORT, name:PORT) into t (kind,
 * port, sa or host). Returns 0, or -1 when malformed or out of memory. */
static int crun_tcp_parse(const char *target, struct crun_target *t)
{
    const char *host = target;
    const char *colon = NULL;
    size_t hlen;
    char buf[LIM_HOST_MAX + 1];
    char *end = NULL;
    long port;

    if (target[0] == '[') {
        const char *close = strchr(target, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        host = target + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(target, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - target);
        if (memchr(target, ':', hlen) != NULL) /* IPv6 without brackets */
            return -1;
    }
    if (hlen == 0 || hlen > LIM_HOST_MAX || colon[1] < '0' || colon[1] > '9')
        return -1;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
        return -1;
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    t->port = (uint16_t)port;

    memset(&t->sa, 0, sizeof(t->sa));
    if (target[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->sa;

        if (evutil_inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(t->port);
        t->salen = (int)sizeof(*sin6);
        return 0;
    }
    {
        struct sockaddr_in *sin = (struct sockaddr_in *)&t->sa;

        if (evutil_inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(t->port);
            t->salen = (int)sizeof(*sin);
            return 0;
        }
    }
    if (!crun_host_name_ok(buf, hlen))
        return -1;
    t->host = strdup(buf);
    return t->host != NULL ? 0 : -1;
}

/* Check and copy a probe's target into t (zeroed by the caller; on -1 it
 * owns nothing). Returns 0, or -1 on a bad target or out of memory. */
static int crun_target_parse(enum crun_kind kind, const char *target, struct crun_target *t)
{
    t->kind = kind;
    if (kind == CRUN_HTTP) {
        if (!crun_has_prefix_ci(target, "http://") && !crun_has_prefix_ci(target, "https://"))
            return -1;
    } else if (kind == CRUN_TCP) {
        if (crun_tcp_parse(target, t) != 0)
            goto fail;
    } else {
        return -1;
    }
    t->text = strdup(target);
    if (t->text == NULL)
        goto fail;
    return 0;
fail:
    crun_target_clear(t);
    return -1;
}

/* ---- probe life cycle ---- */

/* Stop p's run in flight, if any, without a report. */
static void crun_probe_cancel_run(struct crun_probe *p)
{
    if (p->call != NULL) {
        hc_cancel(p->call);
        p->call = NULL;
    }
    if (p->bev != NULL) {
        bufferevent_free(p->bev); /* closes the socket, cancels its lookup */
        p->bev = NULL;
    }
    event_del(p->deadline);
    if (p->inflight) {
        p->inflight = 0;
        p->c->inflight--;
    }
}

/* Free p and what it owns; it must be out of every table. */
static void crun_probe_free(struct crun_probe *p)
{
    if (p == NULL)
        return;
    if (p->timer != NULL)
        event_free(p->timer);
    if (p->deadline != NULL)
        event_free(p->deadline);
    crun_target_clear(&p->t);
    free(p->key);
    free(p);
}

/* Stop p and take it out of c's tables (its instance too when it was the
 * last probe); free it, or leave that to the end of its own report. */
static void crun_probe_drop(struct crun *c, struct crun_probe *p)
{
    struct crun_inst *inst = p->inst;

    crun_probe_cancel_run(p);
    event_del(p->timer);
    HASH_DELETE(hh, c->probes, p);
    DL_DELETE2(inst->probes, p, inst_prev, inst_next);
    if (inst->probes == NULL) {
        HASH_DELETE(hh, c->insts, inst);
        free(inst->id);
        free(inst);
    }
    p->inst = NULL;
    c->count--;
    if (p == c->reporting)
        p->dead = 1;
    else
        crun_probe_free(p);
}

/* A run of p is over (nothing of it is in flight any more): count it and
 * report it. p may be gone when this returns. */
static void crun_finish(struct crun_probe *p, enum crun_result res, const char *output)
{
    struct crun *c = p->c;
    struct crun_probe *outer = c->reporting;

    if (p->inflight) {
        p->inflight = 0;
        c->inflight--;
    }
    if (res == CRUN_PASS)
        c->stats.passed++;
    else if (res == CRUN_WARN)
        c->stats.warned++;
    else
        c->stats.failed++;
    c->reporting = p;
    c->report(c->arg, p->instance_id, p->check_id, res, output);
    c->reporting = outer;
    if (p->dead)
        crun_probe_free(p);
}

/* ---- HTTP runs ---- */

/* hc_send's completion for p's run. */
static void crun_http_done(const struct hc_response *resp, void *arg)
{
    struct crun_probe *p = arg;
    char out[LIM_CHECK_OUTPUT_MAX + 1];
    char detail[96];
    enum crun_result res = CRUN_FAIL;

    p->call = NULL;
    if (resp->error == HC_OK) {
        const char *reason = crun_reason(resp->status);

        if (resp->status >= 200 && resp->status <= 299)
            res = CRUN_PASS;
        else if (resp->status == 429)
            res = CRUN_WARN;
        if (reason != NULL)
            snprintf(detail, sizeof(detail), "%ld %s", resp->status, reason);
        else
            snprintf(detail, sizeof(detail), "%ld", resp->status);
        crun_format(out, "HTTP GET", p->t.text, detail);
    } else if (resp->error == HC_ETIMEOUT) {
        snprintf(detail, sizeof(detail), "timeout after %lld ms", (long long)p->timeout_ms);
        crun_format(out, "HTTP GET", p->t.text, detail);
    } else {
        crun_format(out, "HTTP GET", p->t.text,
                    resp->error_msg[0] != '\0' ? resp->error_msg : "transport error");
    }
    crun_finish(p, res, out);
}

/* Start p's HTTP run. Returns 0, or -1 (nothing started). */
static int crun_http_start(struct crun_probe *p)
{
    struct hc_request req = {
        .method = "GET",
        .url = p->t.text,
        .timeout_ms = (long)p->timeout_ms,
        .connect_timeout_ms = (long)p->timeout_ms,
    };

    p->call = hc_send(p->c->hc, &req, crun_http_done, p);
    return p->call != NULL ? 0 : -1;
}

/* ---- TCP runs ---- */

/* The connect of p's run ended (connected, refused, lookup failed). */
static void crun_tcp_event(struct bufferevent *bev, short events, void *arg)
{
    struct crun_probe *p = arg;
    int err = EVUTIL_SOCKET_ERROR();
    int dns_err = bufferevent_socket_get_dns_error(bev);
    char out[LIM_CHECK_OUTPUT_MAX + 1];
    char detail[128];

    bufferevent_free(bev); /* close at once: a check only connects */
    p->bev = NULL;
    event_del(p->deadline);
    if (events & BEV_EVENT_CONNECTED) {
        crun_format(out, "TCP connect", p->t.text, "success");
        crun_finish(p, CRUN_PASS, out);
        return;
    }
    if (dns_err != 0)
        snprintf(detail, sizeof(detail), "cannot resolve: %s", evutil_gai_strerror(dns_err));
    else
        snprintf(detail, sizeof(detail), "%s", crun_sock_error_text(err));
    crun_format(out, "TCP connect", p->t.text, detail);
    crun_finish(p, CRUN_FAIL, out);
}

/* The deadline of p's TCP run passed. */
static void crun_tcp_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct crun_probe *p = arg;
    char out[LIM_CHECK_OUTPUT_MAX + 1];
    char detail[64];

    (void)fd;
    (void)what;
    if (p->bev != NULL) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    snprintf(detail, sizeof(detail), "timeout after %lld ms", (long long)p->timeout_ms);
    crun_format(out, "TCP connect", p->t.text, detail);
    crun_finish(p, CRUN_FAIL, out);
}

/* Start p's TCP run. Returns 0, or -1 with *why set (nothing in flight). */
static int crun_tcp_start(struct crun_probe *p, const char **why)
{
    struct crun *c = p->c;
    int rc;

    *why = "cannot start the connect";
    /* Deferred callbacks: a connect or lookup that fails at once still
     * reports from the loop, after this returns. */
    p->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (p->bev == NULL)
        return -1;
    bufferevent_setcb(p->bev, NULL, NULL, crun_tcp_event, p);
    if (p->t.salen > 0) {
        rc = bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->t.sa, p->t.salen);
        if (rc != 0)
            *why = crun_sock_error_text(EVUTIL_SOCKET_ERROR());
    } else {
        if (c->dns == NULL)
            c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (c->dns == NULL) {
            *why = "no resolver";
            rc = -1;
        } else {
            rc = bufferevent_socket_connect_hostname(p->bev, c->dns, AF_UNSPEC, p->t.host,
                                                     p->t.port);
        }
    }
    if (rc != 0 || clk_timer_in(p->deadline, p->timeout_ms) != 0) {
        bufferevent_free(p->bev);
        p->bev = NULL;
        event_del(p->deadline);
        return -1;
    }
    return 0;
}

/* ---- scheduling ---- */

/* Start one run of p (not in flight). A run that cannot start is reported
 * as a failure at once (this runs from the loop). p may be gone after. */
static void crun_run(struct crun_probe *p)
{
    struct crun *c = p->c;
    char out[LIM_CHECK_OUTPUT_MAX + 1];
    const char *why = "cannot start the request";
    int rc;

    c->stats.run++;
    p->inflight = 1;
    c->inflight++;
    if (p->t.kind == CRUN_HTTP)
        rc = crun_http_start(p);
    else
        rc = crun_tcp_start(p, &why);
    if (rc != 0) {
        crun_format(out, p->t.kind == CRUN_HTTP ? "HTTP GET" : "TCP connect", p->t.text, why);
        crun_finish(p, CRUN_FAIL, out);
    }
}

/* p's schedule timer: arm the next run one interval after this one was
 * due (later whole intervals when the loop was late past them), then run
 * unless the previous run is still in flight. */
static void crun_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct crun_probe *p = arg;
    int64_t now = clk_now_ms();
    int64_t next = p->due_ms + p->interval_ms;

    (void)fd;
    (void)what;
    if (next <= now)
        next += ((now - next) / p->interval_ms + 1) * p->interval_ms;
    p->due_ms = next;
    /* event_add of a timer fails only on bad arguments. */
    (void)clk_timer_in(p->timer, next - now);
    if (p->inflight) {
        p->c->stats.skipped++;
        return;
    }
    crun_run(p);
}

/* (Re)start p's schedule: the first run at a random point of
 * [0, interval) from now. */
static void crun_schedule_first(struct crun *c, struct crun_probe *p)
{
    int64_t delay = crun_rand_below(c, p->interval_ms);

    p->due_ms = clk_now_ms() + delay;
    (void)clk_timer_in(p->timer, delay); /* fails only on bad arguments */
}

/* ---- public ---- */

/* See runner.h. */
struct crun *crun_new(struct event_base *base, crun_report_fn report, void *arg, unsigned int seed)
{
    struct crun *c = NULL;

    if (base == NULL || report == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base = base;
    c->report = report;
    c->arg = arg;
    if (seed != 0)
        c->rng = seed;
    else
        c->rng = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 40) ^ (uint64_t)clk_now_ms();
    /* the HTTP client comes with the first HTTP probe (crun_add): made
     * here, it would initialise libcurl, whose libraries' pages are about
     * 8 MiB of RSS, in every registry, checks or not */
    return c;
}

/* See runner.h. */
int crun_add(struct crun *c, const char *instance_id, const char *check_id, enum crun_kind kind,
             const char *target, int64_t interval_ms, int64_t timeout_ms)
{
    struct crun_target t;
    struct crun_probe *p = NULL;
    struct crun_inst *inst = NULL;
    int new_inst = 0;
    size_t ilen, clen, keylen;
    char *key = NULL;

    memset(&t, 0, sizeof(t));
    if (c == NULL || instance_id == NULL || check_id == NULL || target == NULL ||
        instance_id[0] == '\0' || check_id[0] == '\0' || interval_ms < 1 ||
        interval_ms > CRUN_MS_MAX || timeout_ms < 1 || timeout_ms > CRUN_MS_MAX)
        return -1;
    if (crun_target_parse(kind, target, &t) != 0)
        return -1;
    if (kind == CRUN_HTTP && c->hc == NULL && (c->hc = hc_client_new(c->base)) == NULL) {
        crun_target_clear(&t);
        return -1;
    }
    ilen = strlen(instance_id);
    clen = strlen(check_id);
    keylen = ilen + 1 + clen;
    key = malloc(keylen + 1);
    if (key == NULL)
        goto fail;
    memcpy(key, instance_id, ilen + 1);
    memcpy(key + ilen + 1, check_id, clen + 1);

    HASH_FIND(hh, c->probes, key, keylen, p);
    if (p != NULL) {
        /* Replace in place: the table and the instance list stay as they
         * are, so nothing can fail from here on. */
        free(key);
        crun_probe_cancel_run(p);
        crun_target_clear(&p->t);
        p->t = t;
        p->interval_ms = interval_ms;
        p->timeout_ms = timeout_ms;
        crun_schedule_first(c, p);
        return 0;
    }

    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    p->c = c;
    p->key = key;
    key = NULL;
    p->keylen = keylen;
    p->instance_id = p->key;
    p->check_id = p->key + ilen + 1;
    p->t = t;
    memset(&t, 0, sizeof(t));
    p->interval_ms = interval_ms;
    p->timeout_ms = timeout_ms;
    p->timer = evtimer_new(c->base, crun_on_timer, p);
    p->deadline = evtimer_new(c->base, crun_tcp_deadline, p);
    if (p->timer == NULL || p->deadline == NULL)
        goto fail;

    HASH_FIND_STR(c->insts, instance_id, inst);
    if (inst == NULL) {
        inst = calloc(1, sizeof(*inst));
        if (inst == NULL)
            goto fail;
        new_inst = 1;
        inst->id = strdup(instance_id);
        if (inst->id == NULL)
            goto fail;
        HASH_ADD_KEYPTR(hh, c->insts, inst->id, ilen, inst);
        if (inst->hh.tbl == NULL)
            goto fail;
    }
    HASH_ADD_KEYPTR(hh, c->probes, p->key, p->keylen, p);
    if (p->hh.tbl == NULL)
        goto fail;
    DL_APPEND2(inst->probes, p, inst_prev, inst_next);
    p->inst = inst;
    c->count++;
    crun_schedule_first(c, p);
    return 0;

fail:
    if (new_inst && inst != NULL) {
        if (inst->hh.tbl != NULL)
            HASH_DELETE(hh, c->insts, inst);
        free(inst->id);
        free(inst);
    }
    crun_probe_free(p);
    crun_target_clear(&t);
    free(key);
    return -1;
}

/* See runner.h. */
void crun_remove_instance(struct crun *c, const char *instance_id)
{
    struct crun_inst *inst = NULL;
    struct crun_probe *p, *tmp;

    if (c == NULL || instance_id == NULL)
        return;
    HASH_FIND_STR(c->insts, instance_id, inst);
    if (inst == NULL)
        return;
    /* The last drop frees inst; the loop reads only the probes. */
    DL_FOREACH_SAFE2(inst->probes, p, tmp, inst_next) { crun_probe_drop(c, p); }
}

/* See runner.h. */
size_t crun_count(const struct crun *c) { return c != NULL ? c->count : 0; }

/* See runner.h. */
size_t crun_inflight(const struct crun *c) { return c != NULL ? c->inflight : 0; }

/* See runner.h. */
void crun_get_stats(const struct crun *c, struct crun_stats *out)
{
    if (c == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = c->stats;
}

/* See runner.h. */
void crun_free(struct crun *c)
{
    struct crun_probe *p, *tmp;

    if (c == NULL)
        return;
    HASH_ITER (hh, c->probes, p, tmp) {
        crun_probe_drop(c, p);
    }
    if (c->dns != NULL)
        evdns_base_free(c->dns, 0);
    hc_client_free(c->hc);
    free(c);
}

/* upstream.c: per-instance breakers and counters (see upstream.h). */
#include "upstream.h"

#include "core/clock.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct up_entry {
    struct up_instance u;
    UT_hash_handle hh;
};

struct up_table {
    struct up_entry *entries; /* uthash head keyed by u.key */
    int64_t (*clock)(void);
};

struct up_table *up_new(int64_t (*clock)(void))
{
    struct up_table *t = calloc(1, sizeof(*t));

    if (t)
        t->clock = clock ? clock : clk_now_ms;
    return t;
}

void up_free(struct up_table *t)
{
    struct up_entry *e, *tmp;

    if (!t)
        return;
    HASH_ITER (hh, t->entries, e, tmp) {
        HASH_DEL(t->entries, e);
        free(e);
    }
    free(t);
}

struct up_instance *up_get(struct up_table *t, const char *service, const char *host, int port)
{
    char key[sizeof(((struct up_instance *)0)->key)];
    struct up_entry *e = NULL;

    snprintf(key, sizeof(key), "%s:%d", host, port);
    HASH_FIND_STR(t->entries, key, e);
    if (e)
        return &e->u;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->u.key, key, sizeof(key));
    snprintf(e->u.service, sizeof(e->u.service), "%s", service);
    brk_init(&e->u.breaker, NULL);
    HASH_ADD_STR(t->entries, u.key, e);
    return &e->u;
}

bool up_allow(struct up_table *t, struct up_instance *u)
{
    return brk_allow(&u->breaker, t->clock());
}

void up_record(struct up_table *t, struct up_instance *u, bool ok, double latency_ms)
{
    brk_record(&u->breaker, ok, t->clock());
    u->total++;
    if (ok)
        u->ok++;
    else
        u->failed++;
    u->latency_ms_sum += latency_ms;
}

bool up_is_open(struct up_table *t, const struct up_instance *u)
{
    return brk_state_at(&u->breaker, t->clock()) == BRK_OPEN;
}

json_t *up_stats_json(struct up_table *t)
{
    json_t *arr = json_array();
    struct up_entry *e;
    int64_t now = t->clock();

    for (e = t->entries; e && arr; e = e->hh.next) {
        const struct up_instance *u = &e->u;

        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f}", "service", u->service, "instance",
                      u->key, "breaker", brk_state_name(brk_state_at(&u->breaker, now)),
                      "total_requests", (json_int_t)u->total, "successful_requests",
                      (json_int_t)u->ok, "failure_requests", (json_int_t)u->failed, "retries",
                      (json_int_t)u->retries, "mean_latency_ms",
                      u->total ? u->latency_ms_sum / (double)u->total : 0.0));
    }
    return json_pack("{s:o}", "upstreams", arr);
}

void up_metrics(struct up_table *t, struct evbuffer *out)
{
    struct up_entry *e;
    int64_t now = t->clock();

    evbuffer_add_printf(out, "# HELP facade_breaker_state Circuit breaker of each upstream "
                             "instance: 0 closed, 1 half-open, 2 open.\n"
                             "# TYPE facade_breaker_state gauge\n");
    for (e = t->entries; e; e = e->hh.next) {
        enum brk_state st = brk_state_at(&e->u.breaker, now);

        /* service names and host:port keys hold no quote or backslash */
        evbuffer_add_printf(out, "facade_breaker_state{service=\"%s\",upstream=\"%s\"} %d\n",
                            e->u.service, e->u.key,
                            st == BRK_OPEN        ? 2
                            : st == BRK_HALF_OPEN ? 1
                                                  : 0);
    }
}

void up_foreach(struct up_table *t, void (*fn)(struct up_instance *u, void *arg), void *arg)
{
    struct up_entry *e;

    for (e = t->entries; e; e = e->hh.next)
        fn(&e->u, arg);
}

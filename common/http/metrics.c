/* metrics.c: per-route request counters and latency histograms kept in hash
 * tables, rendered as Prometheus text exposition format 0.0.4. */
#include "http/metrics.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

/* Latency bucket upper bounds, seconds. */
static const double mtr_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
#define MTR_NBUCKETS (sizeof(mtr_buckets) / sizeof(mtr_buckets[0]))

/* Key of a counter: pointers are compared, so callers pass stable strings. */
struct mtr_count_key {
    const char *method;
    const char *route;
    int status;
};

struct mtr_count {
    struct mtr_count_key key;
    uint64_t n;
    UT_hash_handle hh;
};

struct mtr_hist_key {
    const char *method;
    const char *route;
};

struct mtr_hist {
    struct mtr_hist_key key;
    uint64_t buckets[MTR_NBUCKETS]; /* non-cumulative counts */
    uint64_t count;
    double sum;
    UT_hash_handle hh;
};

struct mtr_registry {
    struct mtr_count *counts; /* uthash head */
    struct mtr_hist *hists;   /* uthash head */
    struct {
        mtr_collect_fn fn;
        void *arg;
    } collectors[MTR_COLLECTORS_MAX];
    int ncollectors;
};

struct mtr_registry *mtr_new(void) { return calloc(1, sizeof(struct mtr_registry)); }

void mtr_free(struct mtr_registry *m)
{
    struct mtr_count *c, *ctmp;
    struct mtr_hist *h, *htmp;

    if (!m)
        return;
    HASH_ITER (hh, m->counts, c, ctmp) {
        HASH_DEL(m->counts, c);
        free(c);
    }
    HASH_ITER (hh, m->hists, h, htmp) {
        HASH_DEL(m->hists, h);
        free(h);
    }
    free(m);
}

void mtr_observe(struct mtr_registry *m, const char *method, const char *route, int status,
                 double seconds)
{
    struct mtr_count_key ck;
    struct mtr_hist_key hk;
    struct mtr_count *c = NULL;
    struct mtr_hist *h = NULL;
    size_t i;

    if (!m)
        return;
    memset(&ck, 0, sizeof(ck)); /* padding takes part in the hash */
    ck.method = method;
    ck.route = route;
    ck.status = status;
    HASH_FIND(hh, m->counts, &ck, sizeof(ck), c);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->key = ck;
        HASH_ADD(hh, m->counts, key, sizeof(ck), c);
    }
    c->n++;

    memset(&hk, 0, sizeof(hk));
    hk.method = method;
    hk.route = route;
    HASH_FIND(hh, m->hists, &hk, sizeof(hk), h);
    if (!h) {
        h = calloc(1, sizeof(*h));
        if (!h)
            return;
        h->key = hk;
        HASH_ADD(hh, m->hists, key, sizeof(hk), h);
    }
    for (i = 0; i < MTR_NBUCKETS; i++) {
        if (seconds <= mtr_buckets[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

int mtr_add_collector(struct mtr_registry *m, mtr_collect_fn fn, void *arg)
{
    if (m->ncollectors >= MTR_COLLECTORS_MAX)
        return -1;
    m->collectors[m->ncollectors].fn = fn;
    m->collectors[m->ncollectors].arg = arg;
    m->ncollectors++;
    return 0;
}

unsigned long mtr_process_rss(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (unsigned long)sysconf(_SC_PAGESIZE);
}

int mtr_render(const struct mtr_registry *m, struct evbuffer *out)
{
    const struct mtr_count *c;
    const struct mtr_hist *h;
    int rc = 0, i;
    size_t b;

    rc |=
        evbuffer_add_printf(
            out, "# HELP http_requests_total HTTP requests answered, by route, method and status.\n"
                 "# TYPE http_requests_total counter\n") < 0;
    for (c = m->counts; c; c = c->hh.next)
        rc |= evbuffer_add_printf(
                  out, "http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                  c->key.route, c->key.method, c->key.status, (unsigned long long)c->n) < 0;

    rc |= evbuffer_add_printf(
              out,
              "# HELP http_request_duration_seconds Time from request received to reply queued.\n"
              "# TYPE http_request_duration_seconds histogram\n") < 0;
    for (h = m->hists; h; h = h->hh.next) {
        uint64_t cumulative = 0;

        for (b = 0; b < MTR_NBUCKETS; b++) {
            cumulative += h->buckets[b];
            rc |= evbuffer_add_printf(out,
                                      "http_request_duration_seconds_bucket{route=\"%s\",method=\"%"
                                      "s\",le=\"%g\"} %llu\n",
                                      h->key.route, h->key.method, mtr_buckets[b],
                                      (unsigned long long)cumulative) < 0;
        }
        rc |= evbuffer_add_printf(
                  out,
                  "http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} "
                  "%llu\n"
                  "http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
                  "http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                  h->key.route, h->key.method, (unsigned long long)h->count, h->key.route,
                  h->key.method, h->sum, h->key.route, h->key.method,
                  (unsigned long long)h->count) < 0;
    }

    rc |=
        evbuffer_add_printf(out,
                            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                            "# TYPE process_resident_memory_bytes gauge\n"
                            "process_resident_memory_bytes %lu\n",
                            mtr_process_rss()) < 0;
    for (i = 0; i < m->ncollectors; i++)
        m->collectors[i].fn(out, m->collectors[i].arg);
    return rc ? -1 : 0;
}

/* metrics.h: request counters and latency histograms per route, and the
 * Prometheus text exposition that GET /metrics serves. Services add their
 * own series with a collector callback. */
#ifndef SVC_HTTP_METRICS_H
#define SVC_HTTP_METRICS_H

struct evbuffer;
struct mtr_registry;

/* Appends the service's own series, in exposition format, to out. */
typedef void (*mtr_collect_fn)(struct evbuffer *out, void *arg);

#define MTR_COLLECTORS_MAX 8

/* Returns a new registry (caller frees with mtr_free) or NULL. */
struct mtr_registry *mtr_new(void) __attribute__((warn_unused_result));
void mtr_free(struct mtr_registry *m);

/* Count one answered request. method and route are borrowed and must stay
 * valid for the registry's life (literals or route patterns). */
void mtr_observe(struct mtr_registry *m, const char *method, const char *route, int status,
                 double seconds);

/* Register a collector called on every render. 0, or -1 when full. */
int mtr_add_collector(struct mtr_registry *m, mtr_collect_fn fn, void *arg)
    __attribute__((warn_unused_result));

/* Append the whole exposition to out. Returns 0, or -1 on allocation failure. */
int mtr_render(const struct mtr_registry *m, struct evbuffer *out)
    __attribute__((warn_unused_result));

/* Resident set size of this process in bytes (from /proc), or 0. */
unsigned long mtr_process_rss(void);

#endif

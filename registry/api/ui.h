/* ui.h: the registry's dashboard routes. The files of registry/ui/ are
 * embedded at build time (cmake/embed.cmake writes the rui_assets table)
 * and served at /ui/ with their Content-Type, an ETag (If-None-Match: 304),
 * Cache-Control: no-cache and a strict Content-Security-Policy; "/" and
 * "/ui" redirect to /ui/. GET /ui/relay?id=<instance>&path=/stats|/metrics
 * fetches that path from a registered instance's address with the
 * asynchronous client and answers with it, so the page reads the callers'
 * side from its own origin; GET /ui/relay?stats=<ids>&metrics=<ids> (comma
 * lists, at most LIM_UI_RELAY_IDS ids in all) fetches them all at once and
 * answers one JSON object keyed by id when the last has ended. See the
 * README, "Dashboard". */
#ifndef REG_API_UI_H
#define REG_API_UI_H

#include <stddef.h>

struct svc;
struct reg_registry;
struct acl;
struct rui;

/* One embedded file (all members static data of the generated table). */
struct rui_asset {
    const char *path;           /* its name under /ui/, e.g. "app.js" */
    const char *content_type;   /* by its extension */
    const unsigned char *bytes; /* len bytes, then a NUL */
    size_t len;                 /* bytes, without the NUL */
    const char *etag;           /* "\"<16 hex digits of SHA-256>\"" */
};

/* The table cmake/embed.cmake generates (in the build tree). */
extern const struct rui_asset rui_assets[];
extern const size_t rui_assets_count;

/* The asset named path (borrowed; "" or "index.html" for the index), or
 * NULL. The returned pointer is static data. */
const struct rui_asset *rui_asset_find(const char *path);

/* Does an If-None-Match header value (borrowed; NULL: absent) name etag
 * (borrowed)? A list of entity tags, each possibly weak (W/), or "*".
 * 1 when it does, 0 otherwise. */
int rui_etag_matches(const char *if_none_match, const char *etag);

/* Is path one the relay may fetch ("/stats" or "/metrics")? 1 or 0. */
int rui_relay_path_ok(const char *path);

/* Add the dashboard routes to svc's server. svc, reg and acl (NULL: open)
 * are borrowed and must outlive it. The relay's client and its stop hook
 * (answering relays still in flight at shutdown) are made here. Caller
 * frees with rui_free. NULL when out of memory or the route table is full. */
struct rui *rui_new(struct svc *svc, struct reg_registry *reg, const struct acl *acl)
    __attribute__((warn_unused_result));

/* Cancel the relays still in flight (their requests are dropped with the
 * server) and free. Accepts NULL. */
void rui_free(struct rui *u);

#endif

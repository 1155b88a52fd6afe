/* urls.h: the registry addresses a service knows (--registry URL[,URL]),
 * validated once, with a cursor that fails over to the next one when the
 * current one does not answer. */
#ifndef SVC_REGCLIENT_URLS_H
#define SVC_REGCLIENT_URLS_H

#include <stddef.h>

#define RU_URLS_MAX 8
#define RU_URL_MAX  256

struct ru_list {
    char urls[RU_URLS_MAX][RU_URL_MAX]; /* without trailing '/' */
    size_t n;
    size_t current;
};

/* Parse "http://host:port[,http://host:port...]" (spaces around commas
 * allowed). Only http:// with a host (name, IPv4 or [IPv6]); a port and a
 * path prefix are optional; trailing '/' are dropped. Returns 0, or -1 with
 * err (may be NULL) naming the bad entry, e.g. "'htp://x' is not an
 * http:// URL", and l emptied (n == 0). */
int ru_parse(struct ru_list *l, const char *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The URL in use (borrowed from l); "" for an empty list. */
const char *ru_current(const struct ru_list *l);

/* Move to the next URL (wrapping); returns the new current one. */
const char *ru_failover(struct ru_list *l);

#endif

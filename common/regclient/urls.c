/* urls.c: the list of registry base URLs behind regurls.h. Parsing is a
 * strict syntax check done once at start-up, so that a typo in --registry
 * fails fast with the bad entry named instead of turning into a stream of
 * connection errors later. The cursor (current) is what the registry client
 * and the discovery cache use; ru_failover moves it when a URL does not
 * answer. */
#include "regclient/urls.h"
#include "core/errbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define RU_SCHEME     "http://"
#define RU_SCHEME_LEN (sizeof(RU_SCHEME) - 1)
#define RU_SHOWN_MAX  64 /* bytes of a bad entry quoted in an error */

/* Is c allowed in a host name or IPv4 literal? */
static bool ru_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* Is c allowed inside the brackets of an IPv6 literal? (hex, ':', '.' for
 * an embedded IPv4, '%' for a zone) */
static bool ru_ipv6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.' || c == '%';
}

/* Is c allowed in the path prefix? Printable ASCII without space, and
 * without '?' and '#': a query or fragment cannot prefix "/v1/...". */
static bool ru_path_char(char c) { return c > ' ' && c < 0x7f && c != '?' && c != '#'; }

/* Fill err with "'<entry>' <why>", quoting at most RU_SHOWN_MAX bytes of
 * the entry (borrowed: entry[0..len)). */
static void ru_fail(char *err, size_t errlen, const char *entry, size_t len, const char *why)
{
    if (err == NULL || errlen == 0)
        return;
    if (len > RU_SHOWN_MAX)
        errbuf_set(err, errlen, "'%.*s...' %s", RU_SHOWN_MAX, entry, why);
    else
        errbuf_set(err, errlen, "'%.*s' %s", (int)len, entry, why);
}

/* Check one entry s[0..len) (already trimmed) and return NULL when it is a
 * valid URL, else the reason. Writes nothing. */
static const char *ru_check(const char *s, size_t len)
{
    size_t i = RU_SCHEME_LEN;
    size_t host_start = 0;
    unsigned long port = 0;
    size_t digits = 0;

    if (len < RU_SCHEME_LEN || strncasecmp(s, RU_SCHEME, RU_SCHEME_LEN) != 0)
        return "is not an http:// URL";
    host_start = i;
    if (i < len && s[i] == '[') {
        i++;
        while (i < len && ru_ipv6_char(s[i]))
            i++;
        if (i >= len || s[i] != ']' || i == host_start + 1)
            return "has a malformed IPv6 address";
        i++;
    } else {
        while (i < len && ru_host_char(s[i]))
            i++;
        if (i == host_start)
            return "has no host";
    }
    if (i < len && s[i] == ':') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (port <= 65535)
                port = port * 10 + (unsigned long)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || port < 1 || port > 65535)
            return "has a bad port (1..65535)";
    }
    if (i < len && s[i] != '/')
        return "has a bad character after the host";
    for (; i < len; i++) {
        if (!ru_path_char(s[i]))
            return "has a bad character in its path";
    }
    return NULL;
}

/* Parse spec (borrowed) into l: entries separated by ',', blanks around
 * them ignored, each checked by ru_check and stored without trailing '/'.
 * On failure l holds no URL (n == 0) and err names the bad entry. Returns 0
 * or -1. */
int ru_parse(struct ru_list *l, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    const char *why = NULL;

    memset(l, 0, sizeof(*l));
    if (spec == NULL || spec[strspn(spec, " \t")] == '\0') {
        if (err != NULL && errlen > 0)
            errbuf_set(err, errlen, "no URL given");
        goto fail;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0) {
            if (err != NULL && errlen > 0)
                errbuf_set(err, errlen, "'%s' has an empty entry", spec);
            goto fail;
        }
        why = ru_check(p, len);
        if (why != NULL) {
            ru_fail(err, errlen, p, len, why);
            goto fail;
        }
        while (p[len - 1] == '/')
            len--; /* stops at the "//" of the scheme at worst: host is set */
        if (len >= RU_URL_MAX) {
            ru_fail(err, errlen, p, len, "is too long");
            goto fail;
        }
        if (l->n == RU_URLS_MAX) {
            if (err != NULL && errlen > 0)
                errbuf_set(err, errlen, "more than %d URLs", RU_URLS_MAX);
            goto fail;
        }
        memcpy(l->urls[l->n], p, len);
        l->urls[l->n][len] = '\0';
        l->n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;

fail:
    memset(l, 0, sizeof(*l));
    return -1;
}

/* The URL in use, borrowed from l; "" when l holds none. */
const char *ru_current(const struct ru_list *l)
{
    if (l->n == 0)
        return "";
    return l->urls[l->current % l->n];
}

/* Advance the cursor to the next URL, wrapping at the end; a list of one
 * stays where it is. Returns the new current URL (borrowed from l). */
const char *ru_failover(struct ru_list *l)
{
    if (l->n == 0)
        return "";
    l->current = (l->current + 1) % l->n;
    return l->urls[l->current];
}

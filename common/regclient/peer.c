/* peer.c: the registry side of a service's life (see peer.h): parse
 * --registry, pick the host to advertise, create the HTTP client, the
 * self-registration and the discovery cache, and hook them into the
 * service's shutdown so that SIGTERM deregisters and the drain waits for
 * the DELETE. */
#include "regclient/peer.h"

#include "core/config.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/service.h"
#include "http/client.h"
#include "regclient/discovery.h"
#include "regclient/register.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_ERR_MAX 256

/* svc on_stop hook: deregister, stop refreshing, then the service's own
 * hook if it had one. */
static void peer_on_stop(void *arg)
{
    struct peer *p = arg;

    rc_stop(p->rc);
    disc_stop(p->disc);
    if (p->next_on_stop != NULL)
        p->next_on_stop(p->next_arg);
}

/* svc busy hook: registry calls and outgoing calls in flight, plus the
 * service's own count if it had a hook. */
static size_t peer_busy(void *arg)
{
    struct peer *p = arg;
    size_t n = rc_busy(p->rc) + hc_inflight(p->hc);

    if (p->next_busy != NULL)
        n += p->next_busy(p->next_arg);
    return n;
}

/* Is bind an address that names no host (empty, 0.0.0.0, ::)? */
static int peer_is_wildcard(const char *bind)
{
    return bind == NULL || bind[0] == '\0' || strcmp(bind, "0.0.0.0") == 0 ||
           strcmp(bind, "::") == 0 || strcmp(bind, "[::]") == 0;
}

/* Write the first IPv4 address of an interface that is up and not
 * loopback into out (cap bytes): inside a container that is the address
 * other containers reach. Returns 0, or -1 when there is none. */
static int peer_first_ipv4(char *out, size_t cap)
{
    struct ifaddrs *all = NULL;
    const struct ifaddrs *i = NULL;
    int rc = -1;

    if (getifaddrs(&all) != 0)
        return -1;
    for (i = all; i != NULL; i = i->ifa_next) {
        const struct sockaddr_in *sin = NULL;

        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
            (i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0)
            continue;
        sin = (const struct sockaddr_in *)(const void *)i->ifa_addr;
        if (inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)cap) == NULL)
            continue;
        rc = 0;
        break;
    }
    freeifaddrs(all);
    return rc;
}

/* Choose the host to register into p->advertise (see peer.h for the order
 * of preference). Returns 0, or -1 with err when --advertise is too long. */
static int peer_pick_host(struct peer *p, const struct cfg_common *c, char *err, size_t errlen)
{
    size_t cap = sizeof(p->advertise);

    if (c->advertise != NULL && c->advertise[0] != '\0') {
        if (strlen(c->advertise) > LIM_HOST_MAX) {
            errbuf_set(err, errlen, "--advertise: longer than %d bytes", LIM_HOST_MAX);
            return -1;
        }
        snprintf(p->advertise, cap, "%s", c->advertise);
        return 0;
    }
    if (!peer_is_wildcard(c->bind) && strlen(c->bind) <= LIM_HOST_MAX) {
        snprintf(p->advertise, cap, "%s", c->bind);
        return 0;
    }
    if (peer_first_ipv4(p->advertise, cap) == 0)
        return 0;
    if (gethostname(p->advertise, cap - 1) == 0 && p->advertise[0] != '\0') {
        p->advertise[cap - 1] = '\0';
        return 0;
    }
    snprintf(p->advertise, cap, "127.0.0.1");
    return 0;
}

/* See peer.h. Zeroes p first; on failure what was made stays in p for
 * peer_free. */
/* Parse c's registry URLs (NULL or "": the default) into urls. 0, or -1
 * with err naming the option. */
static int peer_parse_urls(struct ru_list *urls, const struct cfg_common *c, char *err,
                           size_t errlen)
{
    const char *spec = c->registry;
    char why[PEER_ERR_MAX];

    if (spec == NULL || spec[0] == '\0')
        spec = PEER_REGISTRY_DEFAULT;
    if (ru_parse(urls, spec, why, sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--registry: %s", why);
        return -1;
    }
    return 0;
}

int peer_check_options(const struct cfg_common *c, char *err, size_t errlen)
{
    struct ru_list urls;

    return peer_parse_urls(&urls, c, err, errlen);
}

int peer_start(struct peer *p, struct svc *s, const struct cfg_common *c, const char *name,
               int ttl_s, char *err, size_t errlen)
{
    struct rc_options opt;

    memset(p, 0, sizeof(*p));
    p->svc = s;
    if (peer_parse_urls(&p->urls, c, err, errlen) != 0)
        goto fail;
    if (ttl_s <= 0)
        ttl_s = PEER_TTL_S_DEFAULT;
    if (ttl_s > LIM_TTL_MAX) {
        errbuf_set(err, errlen, "ttl: %d s is over the registry's limit of %d s", ttl_s,
                   LIM_TTL_MAX);
        goto fail;
    }
    if (peer_pick_host(p, c, err, errlen) != 0)
        goto fail;
    memset(&opt, 0, sizeof(opt));
    opt.name = name;
    opt.type = name;
    opt.host = p->advertise;
    opt.port = s->port;
    opt.ttl_s = ttl_s;
    p->hc = hc_client_new(s->base);
    if (p->hc == NULL) {
        errbuf_set(err, errlen, "cannot create the HTTP client");
        goto fail;
    }
    p->rc = rc_new(s->base, p->hc, &p->urls, &opt);
    if (p->rc == NULL) {
        errbuf_set(err, errlen, "cannot create the registry client for '%s' port %d", name,
                   s->port);
        goto fail;
    }
    p->disc = disc_new(s->base, p->hc, &p->urls, DISC_REFRESH_MS_DEFAULT);
    if (p->disc == NULL) {
        errbuf_set(err, errlen, "cannot create the discovery cache");
        goto fail;
    }
    p->next_on_stop = s->on_stop;
    p->next_busy = s->busy;
    p->next_arg = s->hook_arg;
    s->on_stop = peer_on_stop;
    s->busy = peer_busy;
    s->hook_arg = p;
    if (strchr(p->advertise, ':') != NULL)
        log_info("registering as %s at [%s]:%d with %s", rc_id(p->rc), p->advertise, s->port,
                 ru_current(&p->urls));
    else
        log_info("registering as %s at %s:%d with %s", rc_id(p->rc), p->advertise, s->port,
                 ru_current(&p->urls));
    rc_start(p->rc);
    return 0;

fail:
    return -1;
}

/* See peer.h. */
void peer_free(struct peer *p)
{
    if (p == NULL)
        return;
    if (p->svc != NULL && p->svc->hook_arg == p && p->svc->on_stop == peer_on_stop) {
        p->svc->on_stop = p->next_on_stop;
        p->svc->busy = p->next_busy;
        p->svc->hook_arg = p->next_arg;
    }
    disc_free(p->disc);
    rc_free(p->rc);
    hc_client_free(p->hc);
    memset(p, 0, sizeof(*p));
}

/* peer.c: the registry side of a service's life (see peer.h): parse
 * --registry, pick the host to advertise, create the HTTP client, the
 * self-registration and the discovery cache, and hook them into the
 * service's shutdown so that SIGTERM first enters maintenance and serves
 * on for the drain delay, then deregisters, and the drain waits for the
 * DELETE. */
#include "regclient/peer.h"

#include "auth/acl.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "http/service.h"
#include "proto/registry_v1.h"
#include "regclient/discovery.h"
#include "regclient/register.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_ERR_MAX 256

/* Stop hook: deregister, stop refreshing. */
static void peer_on_stop(void *arg)
{
    struct peer *p = arg;

    rc_stop(p->rc);
    disc_stop(p->disc);
}

/* Completion of the maintenance call of a drain: when the registry did not
 * take it, callers are not moving off us, so the delay is cut short (as a
 * second signal would). */
static void peer_on_maintenance(bool ok, void *arg)
{
    struct peer *p = arg;

    if (ok || !svc_delaying(p->svc))
        return;
    log_info("maintenance not acknowledged; ending the drain delay");
    svc_shutdown(p->svc);
}

/* Drain hook: a registered instance enters maintenance (the call bounded
 * by the delay) and asks for the delay; otherwise there is nobody to move
 * off us and no delay is asked for. */
static bool peer_on_drain(void *arg, int64_t delay_ms)
{
    struct peer *p = arg;

    if (!rc_registered(p->rc)) {
        log_info("not registered; stopping without a drain delay");
        return false;
    }
    if (rc_maintenance(p->rc, true, PEER_DRAIN_REASON, delay_ms, peer_on_maintenance, p) != 0) {
        log_warn("could not send the maintenance call of %s; stopping without a drain delay",
                 rc_id(p->rc));
        return false;
    }
    return true;
}

/* Busy hook: registry calls and outgoing calls in flight. */
static size_t peer_busy(void *arg)
{
    const struct peer *p = arg;

    return rc_busy(p->rc) + hc_inflight(p->hc);
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

int peer_token_resolve(const struct cfg_common *c, char *out, size_t cap, char *err, size_t errlen)
{
    bool has_token = c->token != NULL && c->token[0] != '\0';
    bool has_file = c->token_file != NULL && c->token_file[0] != '\0';
    char why[PEER_ERR_MAX];

    if (cap < LIM_ACL_TOKEN_MAX + 1) {
        errbuf_set(err, errlen, "no room for a token");
        return -1;
    }
    out[0] = '\0';
    if (has_token && has_file) {
        errbuf_set(err, errlen, "--token and --token-file: give one of them");
        return -1;
    }
    if (has_token) {
        if (!acl_token_valid(c->token)) {
            errbuf_set(err, errlen,
                       "--token: 1 to %d printable ASCII characters without spaces expected",
                       LIM_ACL_TOKEN_MAX);
            return -1;
        }
        snprintf(out, cap, "%s", c->token);
    } else if (has_file && acl_token_read_file(c->token_file, out, cap, why, sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--token-file: %s", why);
        return -1;
    }
    return 0;
}

int peer_check_kind(const char *name, enum rc_check *out)
{
    if (name == NULL || name[0] == '\0')
        name = PEER_CHECK_DEFAULT;
    if (strcmp(name, "http") == 0)
        *out = RC_CHECK_HTTP;
    else if (strcmp(name, "ttl") == 0)
        *out = RC_CHECK_TTL;
    else if (strcmp(name, "none") == 0)
        *out = RC_CHECK_NONE;
    else
        return -1;
    return 0;
}

int peer_check_options(const struct cfg_common *c, char *err, size_t errlen)
{
    struct ru_list urls;
    char token[LIM_ACL_TOKEN_MAX + 1];
    enum rc_check kind;

    if (peer_check_kind(c->check, &kind) != 0) {
        errbuf_set(err, errlen, "--check: '%.64s' is not http, ttl or none", c->check);
        return -1;
    }
    if (peer_parse_urls(&urls, c, err, errlen) != 0)
        return -1;
    if (peer_token_resolve(c, token, sizeof(token), err, errlen) != 0)
        return -1;
    memset(token, 0, sizeof(token));
    /* A host the registry would refuse (400) would be retried forever. */
    if (c->advertise != NULL && c->advertise[0] != '\0' && !regv1_host_valid(c->advertise)) {
        errbuf_set(err, errlen,
                   "--advertise: '%.64s' is not a host name or an IP address of at most %d "
                   "characters",
                   c->advertise, LIM_HOST_MAX);
        return -1;
    }
    return 0;
}

/* See peer.h. Zeroes p first; on failure what was made stays in p for
 * peer_free. */
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
    if (peer_token_resolve(c, p->token, sizeof(p->token), err, errlen) != 0)
        goto fail;
    memset(&opt, 0, sizeof(opt));
    if (peer_check_kind(c->check, &opt.check) != 0) {
        errbuf_set(err, errlen, "--check: '%.64s' is not http, ttl or none", c->check);
        goto fail;
    }
    opt.check_interval_ms =
        c->check_interval_ms > 0 ? c->check_interval_ms : PEER_CHECK_INTERVAL_MS_DEFAULT;
    opt.token = p->token;
    opt.name = name;
    opt.type = name;
    opt.host = p->advertise;
    opt.port = svc_port(s);
    opt.ttl_s = ttl_s;
    p->hc = hc_client_new(svc_base(s));
    if (p->hc == NULL) {
        errbuf_set(err, errlen, "cannot create the HTTP client");
        goto fail;
    }
    p->rc = rc_new(svc_base(s), p->hc, &p->urls, &opt);
    if (p->rc == NULL) {
        errbuf_set(err, errlen, "cannot create the registry client for '%s' port %d", name,
                   svc_port(s));
        goto fail;
    }
    p->disc = disc_new(svc_base(s), p->hc, &p->urls, DISC_REFRESH_MS_DEFAULT);
    if (p->disc == NULL || disc_set_token(p->disc, p->token) != 0) {
        errbuf_set(err, errlen, "cannot create the discovery cache");
        goto fail;
    }
    if (svc_on_stop(s, peer_on_stop, p) != 0 || svc_on_busy(s, peer_busy, p) != 0 ||
        (c->drain_delay_ms > 0 && svc_on_drain(s, peer_on_drain, p) != 0)) {
        errbuf_set(err, errlen, "too many shutdown hooks");
        goto fail;
    }
    if (c->drain_delay_ms > 0)
        svc_set_drain_delay(s, c->drain_delay_ms);
    if (strchr(p->advertise, ':') != NULL)
        log_info("registering as %s at [%s]:%d with %s", rc_id(p->rc), p->advertise, svc_port(s),
                 ru_current(&p->urls));
    else
        log_info("registering as %s at %s:%d with %s", rc_id(p->rc), p->advertise, svc_port(s),
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
    if (p->svc != NULL)
        svc_remove_hooks(p->svc, p);
    disc_free(p->disc);
    rc_free(p->rc);
    hc_client_free(p->hc);
    memset(p, 0, sizeof(*p));
}

/* The registration lease of c in whole seconds, rounded up (the registry
 * keeps seconds; see CFG_PEER_OPTIONS). */
static int peer_ttl_s(const struct cfg_common *c)
{
    return c->ttl_ms > 0 ? (int)((c->ttl_ms + 999) / 1000) : PEER_TTL_S_DEFAULT;
}

int peer_main(const struct peer_app *app, int argc, char **argv)
{
    struct cfg_common common = {.port = app->port_default,
                                .bind = "127.0.0.1",
                                .registry = PEER_REGISTRY_DEFAULT,
                                .advertise = "",
                                .log_level = "info",
                                .ttl_ms = PEER_TTL_S_DEFAULT * 1000,
                                .check = PEER_CHECK_DEFAULT,
                                .check_interval_ms = PEER_CHECK_INTERVAL_MS_DEFAULT,
                                .drain_delay_ms = PEER_DRAIN_DELAY_MS_DEFAULT};
    const struct cfg_option shared[] = {CFG_COMMON_OPTIONS(&common)};
    size_t nshared = sizeof(shared) / sizeof(shared[0]);
    struct cfg_option *opts = calloc(nshared + app->nopts, sizeof(*opts));
    struct svc *svc = NULL;
    struct peer peer;
    char err[512] = "";
    int rc = 1, cfg_rc;

    memset(&peer, 0, sizeof(peer));
    if (!opts) {
        fprintf(stderr, "%s: out of memory\n", app->name);
        return 1;
    }
    memcpy(opts, shared, sizeof(shared));
    if (app->nopts > 0)
        memcpy(opts + nshared, app->opts, app->nopts * sizeof(*opts));
    cfg_rc =
        svc_configure(app->name, app->summary, opts, nshared + app->nopts, argc, argv, &common);
    free(opts);
    if (cfg_rc >= 0)
        return cfg_rc;
    if (peer_check_options(&common, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", app->name, err);
        return 2;
    }
    if (app->check) {
        rc = app->check(app->arg, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", app->name, err);
            return rc;
        }
        rc = 1;
    }
    svc = svc_new(app->name, err, sizeof(err));
    if (svc)
        hs_set_max_conns(svc_http(svc), (size_t)common.max_conns);
    if (!svc || svc_listen(svc, common.bind, common.port, err, sizeof(err)) != 0 ||
        peer_start(&peer, svc, &common, app->name, peer_ttl_s(&common), err, sizeof(err)) != 0 ||
        app->start(svc, &peer, app->arg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", app->name, err);
        goto cleanup;
    }
    rc = svc_run(svc);
cleanup:
    if (app->stop)
        app->stop(app->arg);
    peer_free(&peer);
    svc_free(svc);
    return rc;
}

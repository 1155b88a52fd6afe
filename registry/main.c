/* main.c: the registry executable: options, store, registry core, API,
 * then the shared service loop until SIGINT/SIGTERM. */
#include "api/action.h"
#include "api/api.h"
#include "api/check_api.h"
#include "api/codec.h"
#include "api/consul.h"
#include "api/dns.h"
#include "api/events.h"
#include "api/kv_api.h"
#include "api/kv_txn.h"
#include "api/replica_api.h"
#include "api/ui.h"
#include "auth/acl.h"
#include "core/catalog.h"
#include "core/config.h"
#include "core/errbuf.h"
#include "core/kv.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/members.h"
#include "core/replica.h"
#include "http/server.h"
#include "http/service.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REG_PORT_DEFAULT     8500
#define REG_DNS_PORT_DEFAULT 8600

/* Whether --flag (or --flag=...) is on the command line or env is set: an
 * interface the operator asked for must start, one left at its default
 * may give way (tests run many registries at once). */
static bool opt_given(int argc, char **argv, const char *flag, const char *env)
{
    size_t len = strlen(flag);
    int i;

    if (getenv(env))
        return true;
    for (i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, flag, len) == 0 &&
            (argv[i][2 + len] == '\0' || argv[i][2 + len] == '='))
            return true;
    return false;
}

/* Who hears this replica's leadership change (registry/core/members.h). */
struct main_lead {
    struct reg_registry *reg; /* borrowed */
    struct check_api *checks; /* borrowed */
};

/* rmb_change_fn: the leader runs the active checks and decides removals. */
static void main_leader_changed(void *arg, bool leading)
{
    struct main_lead *l = arg;

    reg_set_leader(l->reg, leading);
    cka_set_leader(l->checks, leading);
}

/* rmb_options.on_commit: a member commit moves the index too. */
static void main_member_commit(void *arg) { (void)reg_change_remote(arg); }

int main(int argc, char **argv)
{
    struct cfg_common common = {.port = REG_PORT_DEFAULT,
                                .bind = "127.0.0.1",
                                .registry = "",
                                .advertise = "",
                                .log_level = "info"};
    const char *data = "./registry.db";
    const char *backend = "sqlite";
    const char *etcd_endpoints = "";
    const char *etcd_prefix = "/svcmesh/";
    int64_t cleanup_ms = 1000, deregister_ms = 0;
    long max_instances = LIM_INSTANCES_MAX, max_per_name = LIM_PER_NAME_MAX;
    long events_history = LIM_EVENTS_HISTORY_MAX;
    const char *acl_file = "";
    const char *acl_anonymous = "none";
    const char *kv_seed = "";
    const char *datacenter = "dc1";
    const char *node_name = "";
    long dns_port = REG_DNS_PORT_DEFAULT;
    const char *dns_bind = "";
    const char *domain = "consul.";
    int64_t dns_ttl_ms = 0;
    char hostname[256];
    const struct cfg_option opts[] = {
        CFG_SERVER_OPTIONS(&common),
        {"data", "DATA_PATH", CFG_STRING, &data, 0, 0, "PATH",
         "SQLite file (':memory:' keeps memory only)"},
        {"backend", "STORE_BACKEND", CFG_STRING, &backend, 0, 0, "NAME",
         "store backend: sqlite, memory or etcd"},
        {"etcd-endpoints", "ETCD_ENDPOINTS", CFG_STRING, &etcd_endpoints, 0, 0, "URL[,URL...]",
         "etcd's client URLs (--backend etcd)"},
        {"etcd-prefix", "ETCD_PREFIX", CFG_STRING, &etcd_prefix, 0, 0, "PREFIX",
         "every etcd key of the registry under it (--backend etcd)"},
        {"cleanup-interval", "CLEANUP_INTERVAL", CFG_DURATION, &cleanup_ms, 10, 3600 * 1000, "DUR",
         "how often expired instances are looked for"},
        {"deregister-after", "DEREGISTER_AFTER", CFG_DURATION, &deregister_ms, 0,
         7 * 86400 * 1000LL, "DUR", "remove instances critical this long (0: 3 x ttl)"},
        {"max-instances", "MAX_INSTANCES", CFG_INT, &max_instances, 1, 100 * 1000 * 1000L, "N",
         "instances registered in all; beyond, 429"},
        {"max-per-name", "MAX_PER_NAME", CFG_INT, &max_per_name, 1, 100 * 1000 * 1000L, "N",
         "instances of one name; beyond, 429"},
        {"events-history", "EVENTS_HISTORY", CFG_INT, &events_history, 1, LIM_EVENTS_HISTORY_MAX,
         "N", "change events kept for watchers (older ones: 410 / reset)"},
        {"acl-tokens", "ACL_TOKENS", CFG_STRING, &acl_file, 0, 0, "FILE",
         "JSON token -> read|write|service:<name>; writes and reads need a token"},
        {"acl-anonymous", "ACL_ANONYMOUS", CFG_STRING, &acl_anonymous, 0, 0, "none|read",
         "what a caller without a token may do (with --acl-tokens)"},
        {"kv-seed", "KV_SEED", CFG_STRING, &kv_seed, 0, 0, "FILE",
         "JSON key -> string value: KV keys written at start unless they exist"},
        {"datacenter", "DATACENTER", CFG_STRING, &datacenter, 0, 0, "NAME",
         "the datacenter the Consul API names (?dc= of another: 500)"},
        {"node-name", "NODE_NAME", CFG_STRING, &node_name, 0, 0, "NAME",
         "the node name the Consul API names (empty: the host name)"},
        {"dns-port", "DNS_PORT", CFG_INT, &dns_port, 0, 65535, "PORT",
         "DNS interface, UDP and TCP (0: off)"},
        {"dns-bind", "DNS_BIND", CFG_STRING, &dns_bind, 0, 0, "ADDR",
         "address of the DNS interface ('': the --bind address)"},
        {"domain", "DOMAIN", CFG_STRING, &domain, 0, 0, "NAME",
         "DNS domain answered: <name>.service.<domain>"},
        {"dns-ttl", "DNS_TTL", CFG_DURATION, &dns_ttl_ms, 0, 86400 * 1000LL, "DUR",
         "TTL of the DNS records (whole seconds)"},
    };
    struct svc *svc = NULL;
    struct store *store = NULL;
    struct reg_registry *reg = NULL;
    struct reg_api *api = NULL;
    struct ract *ract = NULL;
    struct rev_hub *hub = NULL;
    struct check_api *checks = NULL;
    struct kv_api *kapi = NULL;
    struct kvt_api *ktxn = NULL;
    struct rcon_api *consul = NULL;
    struct rui *ui = NULL;
    struct rcon_options copt;
    struct rdns_server *dns = NULL;
    struct rdns_options dopt;
    struct kv_store *kv = NULL;
    struct kv_options kopt;
    struct rmb_members *members = NULL;
    struct rmb_options mopt;
    struct rrp_api *rapi = NULL;
    struct rpl_routes routes = {NULL, NULL, NULL};
    struct main_lead lead;
    char url[LIM_MEMBER_URL_MAX + 1];
    long seeded = 0;
    struct rev_options hopt;
    struct acl *acl = NULL;
    struct reg_options ropt;
    char err[512];
    long loaded = 0, loaded_kv = 0;
    bool shared = false; /* the store follows (several replicas share it) */
    struct reg_stats rstats;
    int rc = 1, cfg_rc;

    cfg_rc = svc_configure("registry", "The service registry: registration, TTL health, discovery.",
                           opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &common);
    if (cfg_rc >= 0)
        return cfg_rc;
    if (strcmp(backend, "memory") != 0 && strcmp(data, ":memory:") != 0 &&
        strcmp(backend, "sqlite") != 0 && strcmp(backend, "etcd") != 0) {
        fprintf(stderr, "registry: --backend: unknown backend '%s' (sqlite, memory or etcd)\n",
                backend);
        return 2;
    }
    if (strcmp(backend, "etcd") == 0 && etcd_endpoints[0] == '\0') {
        fprintf(stderr, "registry: --backend etcd needs --etcd-endpoints URL[,URL...]\n");
        return 2;
    }
    if (strcmp(acl_anonymous, "none") != 0 && strcmp(acl_anonymous, "read") != 0) {
        fprintf(stderr, "registry: --acl-anonymous: '%.64s' is not none or read\n", acl_anonymous);
        return 2;
    }
    if (rdns_domain_check(domain, err, sizeof(err)) != 0) {
        fprintf(stderr, "registry: --domain: %s\n", err);
        return 2;
    }
    if (acl_file[0] != '\0') {
        acl = acl_new();
        if (!acl || acl_load_file(acl, acl_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "registry: --acl-tokens: %s\n", acl ? err : "out of memory");
            acl_free(acl);
            return 2;
        }
        acl_set_anonymous_read(acl, strcmp(acl_anonymous, "read") == 0);
    }
    /* The loop exists first: the store hands its completions back to it.
     * Loading is synchronous, before the loop runs. */
    svc = svc_new("registry", err, sizeof(err));
    if (svc)
        hs_set_max_conns(svc_http(svc), (size_t)common.max_conns);
    if (!svc) {
        fprintf(stderr, "registry: %s\n", err);
        goto cleanup;
    }
    if (strcmp(backend, "etcd") == 0) {
        struct store_etcd_options eopt = {.endpoints = etcd_endpoints, .prefix = etcd_prefix};

        store = store_etcd_open(&eopt, svc_base(svc), err, sizeof(err));
    } else if (strcmp(backend, "memory") == 0 || strcmp(data, ":memory:") == 0) {
        store = store_memory_open(svc_base(svc));
        backend = "memory";
        if (!store)
            errbuf_set(err, sizeof(err), "out of memory");
    } else {
        store = store_sqlite_open(data, svc_base(svc), err, sizeof(err));
    }
    if (!store) {
        fprintf(stderr, "registry: %s\n", err);
        goto cleanup;
    }
    /* The hub hears the core's changes: it exists before the core. */
    memset(&hopt, 0, sizeof(hopt));
    hopt.history_max = (size_t)events_history;
    hub = rev_hub_new(svc, &hopt);
    if (!hub) {
        fprintf(stderr, "registry: out of memory\n");
        goto cleanup;
    }
    /* The checks' glue hears them first (to start and stop probes), then
     * passes them on to the hub. */
    checks = cka_new(svc, hub, acl);
    if (!checks) {
        fprintf(stderr, "registry: out of memory\n");
        goto cleanup;
    }
    memset(&ropt, 0, sizeof(ropt));
    ropt.observer = cka_observe;
    ropt.observer_arg = checks;
    ropt.codec = &regc_codec;
    ropt.deregister_after_ms = deregister_ms;
    ropt.max_instances = (size_t)max_instances;
    ropt.max_per_name = (size_t)max_per_name;
    reg = reg_new(store, &ropt);
    if (!reg) {
        fprintf(stderr, "registry: out of memory\n");
        goto cleanup;
    }
    /* A shared store (one that follows, as etcd) is read once for the core
     * and the KV store together, then followed (registry/core/replica.h). */
    shared = store->ops->follow != NULL;
    if (!shared) {
        loaded = reg_load(reg, err, sizeof(err));
        if (loaded < 0) {
            fprintf(stderr, "registry: cannot load %s: %s\n", data, err);
            goto cleanup;
        }
    }
    /* The KV store shares the index and the store; its observer (the KV
     * API) publishes its changes to the hub. */
    kapi = kv_api_new(svc, reg, hub, acl);
    memset(&kopt, 0, sizeof(kopt));
    kopt.observer = kv_api_observe;
    kopt.observer_arg = kapi;
    kv = kapi ? kv_new(reg, store, &kopt) : NULL;
    if (!kv) {
        fprintf(stderr, "registry: out of memory\n");
        goto cleanup;
    }
    /* The replicas on the store and their leader: the leader alone runs the
     * active checks and removes instances critical too long. */
    lead.reg = reg;
    lead.checks = checks;
    memset(&mopt, 0, sizeof(mopt));
    mopt.on_change = main_leader_changed;
    mopt.change_arg = &lead;
    mopt.on_commit = main_member_commit;
    mopt.commit_arg = reg;
    members = rmb_new(store, svc_base(svc), &mopt);
    if (!members) {
        fprintf(stderr, "registry: out of memory\n");
        goto cleanup;
    }
    if (rmb_through_store(members))
        cka_set_leader(checks, false); /* until this replica is elected */
    else
        log_info("replicas: %s: this replica is the only one, and leads",
                 rmb_local_reason(members));
    routes.reg = reg;
    routes.kv = kv;
    routes.members = members;
    if (shared) {
        if (rpl_load_routes(store, &routes, err, sizeof(err)) < 0 ||
            rpl_follow_routes(store, &routes, err, sizeof(err)) != 0) {
            fprintf(stderr, "registry: cannot load the %s store: %s\n", store->ops->name, err);
            goto cleanup;
        }
        reg_get_stats(reg, &rstats);
        loaded = (long)rstats.instances;
        loaded_kv = (long)kv_count(kv);
    } else {
        loaded_kv = kv_load(kv, err, sizeof(err));
        if (loaded_kv < 0) {
            fprintf(stderr, "registry: cannot load the KV keys of %s: %s\n", data, err);
            goto cleanup;
        }
    }
    rev_hub_set_index(hub, reg_index(reg));
    if (kv_seed[0] != '\0') {
        seeded = kv_api_seed(kv, store, kv_seed, err, sizeof(err));
        if (seeded < 0) {
            fprintf(stderr, "registry: --kv-seed: %s\n", err);
            rc = 2;
            goto cleanup;
        }
        log_info("--kv-seed %s: %ld keys written (those that existed were kept)", kv_seed, seeded);
    }
    if (shared)
        log_info("store: %s %s prefix %s (shared, followed), %ld registrations and %ld KV keys "
                 "loaded at revision %llu",
                 store->ops->name, etcd_endpoints, etcd_prefix, loaded, loaded_kv,
                 (unsigned long long)reg_index(reg));
    else if (strcmp(backend, "sqlite") == 0)
        log_info("store: sqlite %s, %ld registrations and %ld KV keys loaded, index %llu", data,
                 loaded, loaded_kv, (unsigned long long)reg_index(reg));
    else
        log_info("store: memory (nothing survives a restart)");
    if (acl)
        log_info("ACLs on: %zu tokens from %s; callers without a token may %s", acl_count(acl),
                 acl_file, strcmp(acl_anonymous, "read") == 0 ? "read" : "do nothing");
    else
        log_warn("ACLs off: anyone who can reach the registry may register, deregister and "
                 "read (give --acl-tokens FILE to require tokens)");
    api = reg_api_new(svc, reg, store, hub, cleanup_ms, acl);
    if (!api) {
        fprintf(stderr, "registry: cannot set up the API\n");
        goto cleanup;
    }
    ract = ract_new(svc, reg, api, acl);
    if (!ract) {
        fprintf(stderr, "registry: cannot set up the action protocol\n");
        goto cleanup;
    }
    memset(&copt, 0, sizeof(copt));
    copt.datacenter = datacenter;
    copt.node_name = node_name;
    copt.bind = common.bind;
    copt.store = store;
    consul = rcon_new(svc, reg, hub, acl, &copt);
    if (!consul) {
        fprintf(stderr, "registry: cannot set up the Consul API\n");
        goto cleanup;
    }
    ui = rui_new(svc, reg, acl);
    if (!ui) {
        fprintf(stderr, "registry: cannot set up the dashboard\n");
        goto cleanup;
    }
    if (kv_api_start(kapi, kv) != 0) {
        fprintf(stderr, "registry: cannot set up the KV API\n");
        goto cleanup;
    }
    ktxn = kvt_new(svc, reg, acl, datacenter);
    if (!ktxn || kvt_start(ktxn, kv) != 0) {
        fprintf(stderr, "registry: cannot set up the KV transactions\n");
        goto cleanup;
    }
    if (cka_start(checks, reg) != 0) {
        fprintf(stderr, "registry: cannot set up the health checks\n");
        goto cleanup;
    }
    rapi = rrp_new(svc, members, acl);
    if (!rapi) {
        fprintf(stderr, "registry: cannot set up the replicas route\n");
        goto cleanup;
    }
    if (svc_listen(svc, common.bind, common.port, err, sizeof(err)) != 0) {
        fprintf(stderr, "registry: %s\n", err);
        goto cleanup;
    }
    snprintf(url, sizeof(url), "http://%s:%d", common.advertise[0] ? common.advertise : common.bind,
             svc_port(svc));
    rmb_set_url(members, url);
    if (rmb_start(members, err, sizeof(err)) != 0) {
        fprintf(stderr, "registry: replicas: %s\n", err);
        goto cleanup;
    }
    log_info("replicas: this replica is %s (%s)", rmb_self_id(members), url);
    if (dns_port > 0) {
        memset(&dopt, 0, sizeof(dopt));
        if (node_name[0] == '\0') {
            if (gethostname(hostname, sizeof(hostname)) != 0)
                snprintf(hostname, sizeof(hostname), "registry");
            hostname[sizeof(hostname) - 1] = '\0';
            node_name = hostname;
        }
        dopt.bind = dns_bind[0] ? dns_bind : common.bind;
        dopt.port = dns_port;
        dopt.domain = domain;
        dopt.node = node_name;
        dopt.datacenter = datacenter; /* as the Consul API's */
        dopt.node_addr = common.bind;
        dopt.http_port = svc_port(svc);
        dopt.ttl_s = (uint32_t)((dns_ttl_ms + 999) / 1000);
        dns = rdns_new(svc_base(svc), reg, &dopt, err, sizeof(err));
        if (!dns && opt_given(argc, argv, "dns-port", "DNS_PORT")) {
            fprintf(stderr, "registry: %s\n", err);
            goto cleanup;
        }
        if (dns)
            log_info("dns listening on %s port %ld (udp and tcp), domain %s, node %s", dopt.bind,
                     dns_port, domain, node_name);
        else
            log_warn("%s: the DNS interface is off (give --dns-port to require it)", err);
    }
    rc = svc_run(svc);
cleanup:
    /* The API drains the store (answering what waits) while the server
     * still exists; the store goes before the event base it reports to. */
    if (dns) {
        struct rdns_stats ds;

        rdns_get_stats(dns, &ds);
        log_info("dns: %llu answers over udp, %llu over tcp (%llu truncated), %llu dropped, "
                 "%llu tcp connections refused",
                 (unsigned long long)ds.udp_answers, (unsigned long long)ds.tcp_answers,
                 (unsigned long long)ds.truncated, (unsigned long long)ds.dropped,
                 (unsigned long long)ds.tcp_refused_conns);
    }
    rdns_free(dns); /* reads the core: before it goes */
    reg_api_free(api);
    ract_free(ract);    /* after the drain: its waiting writes need nothing of it */
    rmb_leave(members); /* its record's deletion: another replica leads at once */
    if (store)
        store_drain(store); /* also without the API: the KV writes complete first */
    rrp_free(rapi);
    rmb_free(members); /* its lease lapses: another replica leads */
    routes.members = NULL;
    rcon_free(consul); /* after the drain: its waiting writes answer through it */
    kvt_free(ktxn);    /* after the drain: its waiting transactions answer through the server */
    rui_free(ui);
    kv_api_free(kapi);
    kv_free(kv);
    reg_free(reg);
    cka_free(checks);  /* after the core's last changes (they reach its observer) */
    rev_hub_free(hub); /* after the core's last changes, before the server */
    store_close(store);
    svc_free(svc);
    acl_free(acl);
    return rc;
}

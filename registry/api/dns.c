/* dns.c: the registry's DNS interface (see dns.h for the names answered).
 *
 * One builder, two writers. rdns_build turns a question into a list of
 * records (owner, type, rdata in wire form) in section order, from the
 * core's read API, within the call: nothing of a query is kept after it
 * (the server's scratch space and its names index, sized by the catalog,
 * are all there is), so a flood of queries never grows memory. The
 * UDP writer hands the records to libevent's DNS server
 * (evdns_server_request_add_reply, then _respond or _drop, at once); the
 * TCP writer encodes them itself (rdns_wire_write). Both keep what fits:
 * the wire writer is run first for UDP too, with a cap of 512 bytes, to
 * learn how many records fit (libevent compresses at least as well as it
 * does: it points every owner equal to the question at the question, as
 * the wire writer does, and may compress more), so a UDP answer never
 * reaches libevent's own cut at 512 bytes, which would end the packet in
 * the middle of a record. An answer or authority record left out sets TC
 * (the client asks again over TCP); additional records are left out
 * silently (RFC 2181 9).
 *
 * Choices, as Consul makes them where it has one:
 * - only passing instances are answered; a service with none (or an
 *   unknown name) is NXDOMAIN with the SOA in authority; a known name with
 *   nothing of the type asked is NOERROR, no answer, the SOA in authority;
 * - A and AAAA list the instances whose host is an IP literal of that
 *   family, at most LIM_DNS_ANSWERS_MAX chosen uniformly at random, in a
 *   random order (a new one per answer); when none is but some passing
 *   instance has a DNS name as host, the answer is one CNAME to that name
 *   (a random one: an owner has one CNAME at most);
 * - SRV: priority 1, weight 1, the port, and as target the name
 *   "<hex of the address>.addr.<domain>" (answered by this server, its
 *   A/AAAA in the additional section) or, for a DNS-name host, that name;
 * - names are compared case-insensitively; the question's name is echoed
 *   as it was asked;
 * - names are parsed as Consul parses them: the last label before the
 *   domain names the kind (service, node, addr), or is the datacenter and
 *   the one before it names the kind; only one datacenter label; ours
 *   (--datacenter) answers as without it, another is NXDOMAIN with the
 *   SOA, Consul's answer (since 1.8) for a datacenter it has no path to
 *   (an addr name answers in any datacenter: the address is in it);
 * - "consul" is the registry, as Consul's servers are: a passing instance
 *   without tags, the registry's own address (--bind; a wildcard names
 *   127.0.0.1, as the Consul HTTP API does) and HTTP port, answered with
 *   the instances registered under that name;
 * - a class other than IN or ANY: REFUSED; no question or more than one:
 *   FORMERR; an opcode other than QUERY: NOTIMPL. */
#include "dns.h"

#include "../core/catalog.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#define T_A     1
#define T_CNAME 5
#define T_SOA   6
#define T_AAAA  28
#define T_SRV   33
#define T_ANY   255
#define C_IN    1
#define C_ANY   255

#define RC_NOERROR  0
#define RC_FORMERR  1
#define RC_NXDOMAIN 3
#define RC_NOTIMPL  4
#define RC_REFUSED  5

#define F_QR 0x8000
#define F_AA 0x0400
#define F_TC 0x0200
#define F_RD 0x0100

#define SEC_ANSWER     EVDNS_ANSWER_SECTION
#define SEC_AUTHORITY  EVDNS_AUTHORITY_SECTION
#define SEC_ADDITIONAL EVDNS_ADDITIONAL_SECTION

#define SOA_REFRESH 3600
#define SOA_RETRY   600
#define SOA_EXPIRE  86400

/* Records of one answer: the answers, their additional records, an SOA. */
#define RDNS_RR_MAX (2 * LIM_DNS_ANSWERS_MAX + 2)
/* Bytes of their owners and rdata: an SRV to a 253-byte host name is the
 * largest record of a full answer (about 260 bytes of rdata, no owner). */
#define RDNS_ARENA_MAX (RDNS_RR_MAX * 320)

/* One question, as parsed by libevent (UDP) or rdns_parse_query (TCP). */
struct rdns_question {
    char name[LIM_DNS_NAME_MAX + 1]; /* dotted, no trailing dot, as asked */
    uint16_t type, qclass;
};

/* One record; owner and rdata live in the answer's arena. */
struct rdns_rr {
    uint8_t section;    /* SEC_* */
    bool owner_q;       /* the owner is the question's name */
    uint16_t type;      /* its class is IN */
    uint32_t owner_off; /* a NUL-terminated dotted name, unless owner_q */
    uint32_t rdata_off;
    uint16_t rdata_len;
};

/* An answer being built: records in section order. */
struct rdns_answer {
    int rcode;
    size_t n;
    struct rdns_rr rr[RDNS_RR_MAX];
    size_t used;
    uint8_t arena[RDNS_ARENA_MAX];
};

/* The names index: instance ids by lowercased name, rebuilt from the core
 * when its index moved (every registration, deregistration and removal
 * moves it), so a stable catalog answers a name with one hash lookup
 * instead of a walk over every instance. It holds ids, never instance
 * pointers: each answer looks its instances up again (reg_get) and reads
 * their health and tags as they are now. */
struct rdns_name {
    UT_hash_handle hh;
    size_t head; /* the first of its ids (rdns_cache.next links the rest) */
    char key[];  /* the lowercased name */
};

struct rdns_cache {
    bool valid;
    uint64_t index;          /* reg_index when built */
    struct rdns_name *names; /* uthash by key */
    size_t n, cap;           /* ids */
    size_t *id_off, *next;   /* per id: offset in buf, the next id of its name (SIZE_MAX: none) */
    char *buf;               /* the ids, NUL-terminated */
    size_t buf_len, buf_cap;
};

/* One TCP client. */
struct rdns_conn {
    struct rdns_server *s;
    struct bufferevent *bev;
    struct rdns_conn *prev, *next;
    bool paused;  /* reads stopped until its output drains */
    bool closing; /* the client closed its side: close once the output drained */
};

/* A scan of the instances for one service question. */
struct rdns_scan {
    struct rdns_server *s;
    const char *name, *tag; /* tag NULL: any */
    uint16_t qtype;
    bool known;     /* some instance has the name */
    size_t passing; /* passing ones with the tag */
    size_t seen;    /* of those, the ones of the kind asked (the reservoir's count) */
    size_t n_pick;
    /* the chosen ones: host and port of an instance (its host borrowed from
     * the core for the call) or of the registry itself (the consul service) */
    const char *pick_host[LIM_DNS_ANSWERS_MAX];
    int pick_port[LIM_DNS_ANSWERS_MAX];
    int family[LIM_DNS_ANSWERS_MAX]; /* SRV: each pick's address, for the additional section */
    uint8_t addr[LIM_DNS_ANSWERS_MAX][16];
    const char *cname; /* the host of a passing one with a DNS name as host */
    size_t cname_seen;
};

struct rdns_server {
    struct event_base *base;
    const struct reg_registry *reg;
    char domain[LIM_DNS_DOMAIN_MAX + 1]; /* no trailing dot */
    size_t domain_len;
    char node[LIM_DNS_NAME_MAX + 1];
    char dc[LIM_DNS_NAME_MAX + 1]; /* this datacenter, the optional label before the domain */
    uint32_t ttl;
    int self_family; /* AF_INET or AF_INET6: the node's address */
    uint8_t self_addr[16];
    char self_host[INET6_ADDRSTRLEN]; /* the same, as text (the consul service's host) */
    int http_port;                    /* the consul service's port */
    uint64_t rng;
    struct evdns_server_port *udp;
    struct evconnlistener *tcp;
    struct rdns_conn *conns;
    size_t n_conns;
    struct rdns_stats stats;
    struct rdns_cache cache;
    struct rdns_scan scan;                /* scratch: one service question at a time */
    struct rdns_answer ans;               /* scratch: one answer at a time */
    uint8_t wire[LIM_DNS_TCP_MAX + 2];    /* scratch: an encoded answer */
    uint8_t query[LIM_DNS_TCP_QUERY_MAX]; /* scratch: one TCP query */
};

/* ----------------------------------------------------------- helpers -- */

static uint32_t rdns_rand(struct rdns_server *s)
{
    /* xorshift64*: shuffling needs spread, not secrecy */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 2685821657736338717ULL) >> 32);
}

/* The dotted name (no trailing dot needed; "" is the root) in wire form
 * into out (cap bytes). Its length, or -1 when a label is empty or over 63
 * bytes, the name over 255 bytes, or out too small. */
static int rdns_name_wire(const char *name, uint8_t *out, size_t cap)
{
    size_t pos = 0;
    const char *p = name;

    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);

        if (len == 0 || len > 63 || pos + 1 + len + 1 > cap || pos + 1 + len + 1 > 255)
            return -1;
        out[pos++] = (uint8_t)len;
        memcpy(out + pos, p, len);
        pos += len;
        p += len;
        if (*p == '.')
            p++;
    }
    if (pos + 1 > cap)
        return -1;
    out[pos++] = 0;
    return (int)pos;
}

/* The address family of host (an IP literal, IPv6 with or without
 * brackets) with its bytes in addr, or 0 for a DNS name. */
static int rdns_host_family(const char *host, uint8_t addr[16])
{
    char buf[LIM_HOST_MAX + 1];
    size_t len;

    if (inet_pton(AF_INET, host, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, host, addr) == 1)
        return AF_INET6;
    len = strlen(host);
    if (len >= 3 && len < sizeof(buf) && host[0] == '[' && host[len - 1] == ']') {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        if (inet_pton(AF_INET6, buf, addr) == 1)
            return AF_INET6;
    }
    return 0;
}

/* --------------------------------------------------------- the builder -- */

/* Add a record: owner NULL means the question's name; owner and rdata
 * (borrowed) are copied. -1 when the answer is full (the record is left
 * out; what is there stays consistent). */
static int ans_add(struct rdns_answer *a, int section, const char *owner, uint16_t type,
                   const uint8_t *rdata, size_t rdlen)
{
    size_t olen = owner ? strlen(owner) + 1 : 0;
    struct rdns_rr *rr;

    if (a->n >= RDNS_RR_MAX || rdlen > 0xffff || a->used + olen + rdlen > sizeof(a->arena))
        return -1;
    rr = &a->rr[a->n++];
    rr->section = (uint8_t)section;
    rr->owner_q = owner == NULL;
    rr->type = type;
    rr->owner_off = (uint32_t)a->used;
    if (owner)
        memcpy(a->arena + a->used, owner, olen);
    a->used += olen;
    rr->rdata_off = (uint32_t)a->used;
    rr->rdata_len = (uint16_t)rdlen;
    memcpy(a->arena + a->used, rdata, rdlen);
    a->used += rdlen;
    return 0;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

/* The SOA of the domain, in section. */
static void ans_add_soa(struct rdns_server *s, struct rdns_answer *a, int section)
{
    uint8_t rd[2 * 256 + 20];
    char name[LIM_DNS_DOMAIN_MAX + 16];
    int n1, n2;

    snprintf(name, sizeof(name), "ns.%s", s->domain);
    n1 = rdns_name_wire(name, rd, sizeof(rd));
    snprintf(name, sizeof(name), "hostmaster.%s", s->domain);
    n2 = n1 < 0 ? -1 : rdns_name_wire(name, rd + n1, sizeof(rd) - (size_t)n1);
    if (n2 < 0)
        return;
    put32(rd + n1 + n2, (uint32_t)reg_index(s->reg));
    put32(rd + n1 + n2 + 4, SOA_REFRESH);
    put32(rd + n1 + n2 + 8, SOA_RETRY);
    put32(rd + n1 + n2 + 12, SOA_EXPIRE);
    put32(rd + n1 + n2 + 16, s->ttl);
    (void)ans_add(a, section, s->domain, T_SOA, rd, (size_t)(n1 + n2 + 20));
}

/* An address record of family (its bytes in addr) under owner (NULL: the
 * question's name). */
static int ans_add_addr(struct rdns_answer *a, int section, const char *owner, int family,
                        const uint8_t *addr)
{
    return family == AF_INET ? ans_add(a, section, owner, T_A, addr, 4)
                             : ans_add(a, section, owner, T_AAAA, addr, 16);
}

/* "<hex of addr>.addr.<domain>" into out. */
static void rdns_addr_name(const struct rdns_server *s, int family, const uint8_t *addr, char *out,
                           size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = family == AF_INET ? 4 : 16, i;
    char h[33];

    for (i = 0; i < n; i++) {
        h[2 * i] = hex[addr[i] >> 4];
        h[2 * i + 1] = hex[addr[i] & 15];
    }
    h[2 * n] = '\0';
    snprintf(out, cap, "%s.addr.%s", h, s->domain);
}

/* Whether qtype asks for addresses of family. */
static bool rdns_wants(uint16_t qtype, int family)
{
    if (qtype == T_ANY)
        return family != 0;
    return (qtype == T_A && family == AF_INET) || (qtype == T_AAAA && family == AF_INET6);
}

/* Offer one passing candidate with the tag (host borrowed for the
 * question) to the scan: counted, and kept at random when of the kind
 * asked. */
static void rdns_scan_offer(struct rdns_scan *sc, const char *host, int port)
{
    uint8_t addr[16];
    bool wanted;
    int family;

    sc->passing++;
    family = rdns_host_family(host, addr);
    wanted = sc->qtype == T_SRV || rdns_wants(sc->qtype, family);
    if (wanted) {
        /* reservoir sampling: each of the seen ones is kept with the same
         * chance when there are more than LIM_DNS_ANSWERS_MAX */
        size_t j = sc->n_pick;

        sc->seen++;
        if (sc->n_pick < LIM_DNS_ANSWERS_MAX)
            sc->n_pick++;
        else
            j = rdns_rand(sc->s) % sc->seen;
        if (j < LIM_DNS_ANSWERS_MAX) {
            sc->pick_host[j] = host;
            sc->pick_port[j] = port;
        }
    } else if (family == 0 && (sc->qtype == T_A || sc->qtype == T_AAAA || sc->qtype == T_ANY)) {
        sc->cname_seen++;
        if (rdns_rand(sc->s) % sc->cname_seen == 0)
            sc->cname = host;
    }
}

static int rdns_scan_one(const struct reg_instance *in, void *arg)
{
    struct rdns_scan *sc = arg;

    if (strcasecmp(reg_instance_name(in), sc->name) != 0)
        return 0;
    sc->known = true;
    if (reg_instance_health(in) != REG_PASSING)
        return 0;
    if (sc->tag) {
        size_t i, n = reg_instance_tag_count(in);

        for (i = 0; i < n && strcasecmp(reg_instance_tag(in, i), sc->tag) != 0; i++)
            ;
        if (i == n)
            return 0;
    }
    rdns_scan_offer(sc, reg_instance_host(in), reg_instance_port(in));
    return 0;
}

static void rdns_cache_clear(struct rdns_cache *c)
{
    struct rdns_name *n, *tmp;

    HASH_ITER (hh, c->names, n, tmp) {
        HASH_DEL(c->names, n);
        free(n);
    }
    c->n = c->buf_len = 0;
    c->valid = false;
}

static void rdns_cache_free(struct rdns_cache *c)
{
    rdns_cache_clear(c);
    free(c->id_off);
    free(c->next);
    free(c->buf);
}

static void rdns_lower(char *out, const char *in, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    out[len] = '\0';
}

/* Add one instance to the cache being built: 0, -1 when out of memory. */
static int rdns_cache_add(const struct reg_instance *in, void *arg)
{
    struct rdns_cache *c = arg;
    const char *id = reg_instance_id(in), *name = reg_instance_name(in);
    size_t idlen = strlen(id) + 1, nlen = strlen(name);
    char key[LIM_NAME_MAX + 1];
    struct rdns_name *n = NULL;

    if (nlen > LIM_NAME_MAX)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        size_t *o = realloc(c->id_off, cap * sizeof(*o));

        if (!o)
            return -1;
        c->id_off = o;
        o = realloc(c->next, cap * sizeof(*o));
        if (!o)
            return -1;
        c->next = o;
        c->cap = cap;
    }
    if (c->buf_len + idlen > c->buf_cap) {
        size_t cap = c->buf_cap ? 2 * c->buf_cap : 16384;
        char *b;

        while (cap < c->buf_len + idlen)
            cap *= 2;
        b = realloc(c->buf, cap);
        if (!b)
            return -1;
        c->buf = b;
        c->buf_cap = cap;
    }
    rdns_lower(key, name, nlen);
    HASH_FIND(hh, c->names, key, nlen, n);
    if (!n) {
        n = malloc(sizeof(*n) + nlen + 1);
        if (!n)
            return -1;
        memcpy(n->key, key, nlen + 1);
        n->head = SIZE_MAX;
        HASH_ADD_KEYPTR(hh, c->names, n->key, nlen, n);
    }
    memcpy(c->buf + c->buf_len, id, idlen);
    c->id_off[c->n] = c->buf_len;
    c->buf_len += idlen;
    c->next[c->n] = n->head;
    n->head = c->n++;
    return 0;
}

/* Make the cache follow the core: 0, or -1 when it could not be built
 * (out of memory: the caller walks the core instead). */
static int rdns_cache_sync(struct rdns_server *s)
{
    struct rdns_cache *c = &s->cache;
    struct reg_filter all = {.health = -1};
    uint64_t index = reg_index(s->reg);

    if (c->valid && c->index == index)
        return 0;
    rdns_cache_clear(c);
    if (reg_foreach(s->reg, &all, rdns_cache_add, c) != 0) {
        rdns_cache_clear(c);
        return -1;
    }
    c->valid = true;
    c->index = index;
    return 0;
}

static void rdns_scan_run(struct rdns_scan *sc)
{
    struct rdns_server *s = sc->s;
    struct reg_filter all = {.health = -1};
    char key[LIM_NAME_MAX + 1];
    size_t nlen = strlen(sc->name), k;
    struct rdns_name *n = NULL;

    sc->known = false;
    sc->passing = sc->seen = sc->n_pick = sc->cname_seen = 0;
    sc->cname = NULL;
    if (strcasecmp(sc->name, "consul") == 0) {
        /* the registry itself, as Consul's servers are: a known name, an
         * instance without tags beside those registered under it */
        sc->known = true;
        if (!sc->tag)
            rdns_scan_offer(sc, s->self_host, s->http_port);
    }
    if (rdns_cache_sync(s) != 0) {
        /* rdns_scan_one never stops the walk */
        if (reg_foreach(s->reg, &all, rdns_scan_one, sc) != 0)
            sc->passing = 0;
        return;
    }
    if (nlen > LIM_NAME_MAX)
        return;
    rdns_lower(key, sc->name, nlen);
    HASH_FIND(hh, s->cache.names, key, nlen, n);
    for (k = n ? n->head : SIZE_MAX; k != SIZE_MAX; k = s->cache.next[k]) {
        const struct reg_instance *in = reg_get(s->reg, s->cache.buf + s->cache.id_off[k]);

        if (in)
            (void)rdns_scan_one(in, sc);
    }
}

/* Fill the address of pick i (after those before it): whether it is an IP
 * literal that no pick before it has (an RRset holds each address once,
 * RFC 2181 5; instances may share a host). */
static bool rdns_pick_addr(struct rdns_scan *sc, size_t i)
{
    int family = rdns_host_family(sc->pick_host[i], sc->addr[i]);
    size_t j;

    sc->family[i] = family;
    if (!family)
        return false;
    for (j = 0; j < i; j++)
        if (sc->family[j] == family &&
            memcmp(sc->addr[j], sc->addr[i], family == AF_INET ? 4 : 16) == 0)
            return false;
    return true;
}

/* [<tag>.]<name> or _<name>._<tag> (rest, borrowed, is modified). */
static void rdns_build_service(struct rdns_server *s, struct rdns_answer *a, uint16_t qtype,
                               char *rest)
{
    struct rdns_scan *sc = &s->scan;
    char *dot = strchr(rest, '.');
    size_t i;

    memset(sc, 0, sizeof(*sc));
    sc->s = s;
    sc->qtype = qtype;
    if (rest[0] == '_' && dot && dot[1] == '_' && !strchr(dot + 1, '.')) {
        *dot = '\0';
        sc->name = rest + 1;
        sc->tag = dot + 2;
        if (strcasecmp(sc->tag, "tcp") == 0) /* Consul's one protocol label: _udp is a tag */
            sc->tag = NULL;
        if (sc->name[0] == '\0' || (sc->tag && sc->tag[0] == '\0'))
            goto nxdomain;
        rdns_scan_run(sc);
    } else if (dot) {
        /* <tag>.<name>, unless no instance has that name: then a name with
         * a dot in it */
        *dot = '\0';
        sc->tag = rest;
        sc->name = dot + 1;
        rdns_scan_run(sc);
        if (!sc->known) {
            *dot = '.';
            sc->tag = NULL;
            sc->name = rest;
            rdns_scan_run(sc);
        }
    } else {
        sc->name = rest;
        rdns_scan_run(sc);
    }
    if (sc->passing == 0)
        goto nxdomain;
    /* a random order: Fisher-Yates over the chosen ones */
    for (i = sc->n_pick; i > 1; i--) {
        size_t j = rdns_rand(s) % i;
        const char *t = sc->pick_host[i - 1];
        int p = sc->pick_port[i - 1];

        sc->pick_host[i - 1] = sc->pick_host[j];
        sc->pick_port[i - 1] = sc->pick_port[j];
        sc->pick_host[j] = t;
        sc->pick_port[j] = p;
    }
    if (qtype == T_SRV) {
        for (i = 0; i < sc->n_pick; i++) {
            const char *host = sc->pick_host[i];
            char target[LIM_DNS_NAME_MAX + 1];
            uint8_t rd[6 + 256], addr[16];
            int family = rdns_host_family(host, addr), n;

            if (family)
                rdns_addr_name(s, family, addr, target, sizeof(target));
            else
                snprintf(target, sizeof(target), "%s", host);
            put16(rd, 1);
            put16(rd + 2, 1);
            put16(rd + 4, (uint32_t)sc->pick_port[i]);
            n = rdns_name_wire(target, rd + 6, sizeof(rd) - 6);
            if (n > 0)
                (void)ans_add(a, SEC_ANSWER, NULL, T_SRV, rd, (size_t)(6 + n));
        }
        for (i = 0; i < sc->n_pick; i++) {
            char target[LIM_DNS_NAME_MAX + 1];

            if (!rdns_pick_addr(sc, i))
                continue;
            rdns_addr_name(s, sc->family[i], sc->addr[i], target, sizeof(target));
            (void)ans_add_addr(a, SEC_ADDITIONAL, target, sc->family[i], sc->addr[i]);
        }
        return;
    }
    if (sc->n_pick > 0) {
        for (i = 0; i < sc->n_pick; i++)
            if (rdns_pick_addr(sc, i))
                (void)ans_add_addr(a, SEC_ANSWER, NULL, sc->family[i], sc->addr[i]);
        return;
    }
    if (sc->cname) {
        uint8_t rd[256];
        int n = rdns_name_wire(sc->cname, rd, sizeof(rd));

        if (n > 0) {
            (void)ans_add(a, SEC_ANSWER, NULL, T_CNAME, rd, (size_t)n);
            return;
        }
    }
    /* known and passing, nothing of this type */
    ans_add_soa(s, a, SEC_AUTHORITY);
    return;
nxdomain:
    a->rcode = RC_NXDOMAIN;
    ans_add_soa(s, a, SEC_AUTHORITY);
}

/* <hex>.addr.<domain>: 8 hex digits an IPv4 address, 32 an IPv6 one. */
static void rdns_build_addr(struct rdns_server *s, struct rdns_answer *a, uint16_t qtype,
                            const char *rest)
{
    size_t len = strlen(rest), i;
    uint8_t addr[16];
    int family = len == 8 ? AF_INET : len == 32 ? AF_INET6 : 0;

    for (i = 0; family && i < len; i++) {
        char c = rest[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;

        if (v < 0)
            family = 0;
        else if (i % 2 == 0)
            addr[i / 2] = (uint8_t)(v << 4);
        else
            addr[i / 2] |= (uint8_t)v;
    }
    if (!family) {
        a->rcode = RC_NXDOMAIN;
        ans_add_soa(s, a, SEC_AUTHORITY);
    } else if (rdns_wants(qtype, family)) {
        (void)ans_add_addr(a, SEC_ANSWER, NULL, family, addr);
    } else {
        ans_add_soa(s, a, SEC_AUTHORITY);
    }
}

/* Build the answer to q into a (reset first). */
static void rdns_build(struct rdns_server *s, const struct rdns_question *q, struct rdns_answer *a)
{
    char pre[LIM_DNS_NAME_MAX + 1];
    size_t nlen = strlen(q->name), plen;
    bool dc_seen = false, other_dc = false;

    a->n = 0;
    a->used = 0;
    a->rcode = RC_NOERROR;
    if (q->qclass != C_IN && q->qclass != C_ANY) {
        a->rcode = RC_REFUSED;
        return;
    }
    if (nlen == s->domain_len && strcasecmp(q->name, s->domain) == 0) {
        if (q->type == T_SOA || q->type == T_ANY)
            ans_add_soa(s, a, SEC_ANSWER);
        else
            ans_add_soa(s, a, SEC_AUTHORITY);
        return;
    }
    if (nlen <= s->domain_len + 1 || q->name[nlen - s->domain_len - 1] != '.' ||
        strcasecmp(q->name + nlen - s->domain_len, s->domain) != 0) {
        a->rcode = RC_REFUSED;
        return;
    }
    plen = nlen - s->domain_len - 1;
    memcpy(pre, q->name, plen);
    pre[plen] = '\0';
    /* Consul's parse: the last label names the kind, or else it is the
     * datacenter (one label: a second unknown one is NXDOMAIN) and the
     * label before it names the kind */
    for (;;) {
        char *dot = strrchr(pre, '.');
        const char *last = dot ? dot + 1 : pre;

        if (q->type == T_SRV && last[0] == '_') {
            /* _<name>._<tag>[.<dc>].<domain>: "service" left out, as
             * Consul allows for SRV */
            if (other_dc)
                goto nxdomain;
            rdns_build_service(s, a, q->type, pre);
            return;
        }
        if (!dot)
            goto nxdomain;
        *dot = '\0';
        if (strcasecmp(last, "service") == 0) {
            if (other_dc)
                goto nxdomain;
            rdns_build_service(s, a, q->type, pre);
            return;
        }
        if (strcasecmp(last, "addr") == 0) {
            /* the address is in the name: any datacenter's, as in Consul */
            rdns_build_addr(s, a, q->type, pre);
            return;
        }
        if (strcasecmp(last, "node") == 0) {
            if (other_dc || strcasecmp(pre, s->node) != 0)
                goto nxdomain;
            if (rdns_wants(q->type, s->self_family))
                (void)ans_add_addr(a, SEC_ANSWER, NULL, s->self_family, s->self_addr);
            else
                ans_add_soa(s, a, SEC_AUTHORITY);
            return;
        }
        if (dc_seen)
            goto nxdomain;
        /* a datacenter label; another one than ours is NXDOMAIN below
         * (Consul has no path to it), once the kind before it is known */
        dc_seen = true;
        other_dc = strcasecmp(last, s->dc) != 0;
    }
nxdomain:
    a->rcode = RC_NXDOMAIN;
    ans_add_soa(s, a, SEC_AUTHORITY);
}

/* ------------------------------------------------------ the wire writer -- */

/* Encode the answer to q (NULL: no question section), every record with
 * ttl, with the query's id and RD bit into out (cap >= 12 bytes): the records in order while they
 * fit. counts[] gets how many of each section were written; *tc is set when
 * an answer or authority record was left out. Returns the length. */
static size_t rdns_wire_write(const struct rdns_question *q, const struct rdns_answer *a,
                              uint32_t ttl, uint16_t id, uint16_t rd, uint8_t *out, size_t cap,
                              size_t counts[3], bool *tc)
{
    size_t pos = 12, i;
    uint16_t flags;

    counts[0] = counts[1] = counts[2] = 0;
    *tc = false;
    if (q) {
        int n = rdns_name_wire(q->name, out + pos, cap - pos);

        if (n < 0 || pos + (size_t)n + 4 > cap) {
            q = NULL;
        } else {
            pos += (size_t)n;
            put16(out + pos, q->type);
            put16(out + pos + 2, q->qclass);
            pos += 4;
        }
    }
    for (i = 0; i < a->n; i++) {
        const struct rdns_rr *rr = &a->rr[i];
        size_t need = 10 + rr->rdata_len;
        int olen = 2;

        if (!rr->owner_q || !q) {
            olen = rdns_name_wire((const char *)a->arena + rr->owner_off, out + pos, cap - pos);
            if (olen < 0) {
                if (rr->section != SEC_ADDITIONAL)
                    *tc = true;
                break;
            }
        }
        if (pos + (size_t)olen + need > cap) {
            if (rr->section != SEC_ADDITIONAL)
                *tc = true;
            break;
        }
        if (rr->owner_q && q)
            put16(out + pos, 0xc000 | 12); /* the question's name */
        pos += (size_t)olen;
        put16(out + pos, rr->type);
        put16(out + pos + 2, C_IN);
        put32(out + pos + 4, ttl);
        put16(out + pos + 8, rr->rdata_len);
        memcpy(out + pos + 10, a->arena + rr->rdata_off, rr->rdata_len);
        pos += need;
        counts[rr->section]++;
    }
    flags = (uint16_t)(F_QR | F_AA | rd | (*tc ? F_TC : 0) | (a->rcode & 15));
    put16(out, id);
    put16(out + 2, flags);
    put16(out + 4, q ? 1 : 0);
    put16(out + 6, (uint32_t)counts[0]);
    put16(out + 8, (uint32_t)counts[1]);
    put16(out + 10, (uint32_t)counts[2]);
    return pos;
}

/* Parse the one question of a query message (len >= 12) into q. 0, or the
 * rcode to answer with (FORMERR, NOTIMPL). No compression pointers (a
 * query has nothing to point at), labels of 1..63 bytes without '.' or
 * NUL, the name at most 255 bytes in wire form. */
static int rdns_parse_query(const uint8_t *m, size_t len, struct rdns_question *q)
{
    size_t pos = 12, out = 0;
    uint16_t flags = (uint16_t)((m[2] << 8) | m[3]);

    if (((flags >> 11) & 15) != 0)
        return RC_NOTIMPL;
    if (((m[4] << 8) | m[5]) != 1)
        return RC_FORMERR;
    for (;;) {
        size_t l;

        if (pos >= len)
            return RC_FORMERR;
        l = m[pos];
        if (l == 0)
            break;
        if (l > 63 || pos + 1 + l >= len || pos - 12 + 1 + l + 1 > 255)
            return RC_FORMERR;
        if (memchr(m + pos + 1, '.', l) || memchr(m + pos + 1, '\0', l))
            return RC_FORMERR;
        if (out)
            q->name[out++] = '.';
        memcpy(q->name + out, m + pos + 1, l);
        out += l;
        pos += 1 + l;
    }
    q->name[out] = '\0';
    pos++;
    if (pos + 4 > len)
        return RC_FORMERR;
    q->type = (uint16_t)((m[pos] << 8) | m[pos + 1]);
    q->qclass = (uint16_t)((m[pos + 2] << 8) | m[pos + 3]);
    return 0;
}

size_t rdns_answer_wire(struct rdns_server *s, const uint8_t *query, size_t len, uint8_t *out,
                        size_t cap)
{
    struct rdns_question q;
    size_t counts[3], n;
    uint16_t id, rd;
    bool tc;
    int rc;

    if (len < 12 || cap < 12 || (query[2] & 0x80))
        return 0;
    if (cap > LIM_DNS_TCP_MAX)
        cap = LIM_DNS_TCP_MAX;
    id = (uint16_t)((query[0] << 8) | query[1]);
    rd = (uint16_t)(((query[2] << 8) | query[3]) & F_RD);
    rc = rdns_parse_query(query, len, &q);
    if (rc != 0) {
        s->ans.n = 0;
        s->ans.rcode = rc;
        return rdns_wire_write(NULL, &s->ans, s->ttl, id, rd, out, cap, counts, &tc);
    }
    rdns_build(s, &q, &s->ans);
    n = rdns_wire_write(&q, &s->ans, s->ttl, id, rd, out, cap, counts, &tc);
    if (tc)
        s->stats.truncated++;
    return n;
}

/* ------------------------------------------------------------- UDP -- */

static void rdns_udp_request(struct evdns_server_request *req, void *arg)
{
    struct rdns_server *s = arg;
    struct rdns_answer *a = &s->ans;
    struct rdns_question q;
    size_t counts[3], i, taken[3] = {0, 0, 0};
    bool tc;
    int rcode;

    if (req->nquestions != 1) {
        rcode = RC_FORMERR;
        tc = false;
        goto respond;
    }
    snprintf(q.name, sizeof(q.name), "%s", req->questions[0]->name);
    q.type = (uint16_t)req->questions[0]->type;
    q.qclass = (uint16_t)req->questions[0]->dns_question_class;
    rdns_build(s, &q, a);
    (void)rdns_wire_write(&q, a, s->ttl, 0, 0, s->wire, LIM_DNS_UDP_MAX, counts, &tc);
    for (i = 0; i < a->n; i++) {
        const struct rdns_rr *rr = &a->rr[i];

        if (taken[rr->section] >= counts[rr->section])
            continue;
        taken[rr->section]++;
        if (evdns_server_request_add_reply(
                req, rr->section, rr->owner_q ? q.name : (const char *)a->arena + rr->owner_off,
                rr->type, C_IN, (int)s->ttl, rr->rdata_len, 0,
                (const char *)a->arena + rr->rdata_off) != 0)
            goto drop;
    }
    rcode = a->rcode;
    if (tc)
        s->stats.truncated++;
respond:
    evdns_server_request_set_flags(req, (req->flags & EVDNS_FLAGS_RD) | EVDNS_FLAGS_AA |
                                            (tc ? F_TC : 0));
    /* answered now or dropped now: a request is never kept */
    if (evdns_server_request_respond(req, rcode) < 0)
        goto drop;
    s->stats.udp_answers++;
    return;
drop:
    s->stats.dropped++;
    evdns_server_request_drop(req);
}

/* ------------------------------------------------------------- TCP -- */

static void rdns_conn_free(struct rdns_conn *c)
{
    struct rdns_server *s = c->s;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    bufferevent_free(c->bev);
    free(c);
}

static void rdns_tcp_read(struct bufferevent *bev, void *arg)
{
    struct rdns_conn *c = arg;
    struct rdns_server *s = c->s;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    for (;;) {
        uint8_t hdr[2];
        size_t qlen, n;

        if (evbuffer_get_length(out) > LIM_DNS_TCP_OUTPUT_MAX) {
            /* the client does not read its answers: stop reading its
             * queries until they drained (rdns_tcp_write) */
            bufferevent_disable(bev, EV_READ);
            c->paused = true;
            return;
        }
        if (evbuffer_copyout(in, hdr, 2) < 2)
            return;
        qlen = (size_t)((hdr[0] << 8) | hdr[1]);
        if (qlen < 12 || qlen > LIM_DNS_TCP_QUERY_MAX)
            goto close;
        if (evbuffer_get_length(in) < 2 + qlen)
            return;
        evbuffer_drain(in, 2);
        if (evbuffer_remove(in, s->query, qlen) != (int)qlen)
            goto close;
        n = rdns_answer_wire(s, s->query, qlen, s->wire + 2, LIM_DNS_TCP_MAX);
        if (n == 0)
            goto close;
        put16(s->wire, (uint32_t)n);
        if (bufferevent_write(bev, s->wire, n + 2) != 0)
            goto close;
        s->stats.tcp_answers++;
    }
close:
    rdns_conn_free(c);
}

static void rdns_tcp_write(struct bufferevent *bev, void *arg)
{
    struct rdns_conn *c = arg;

    if (c->closing) {
        rdns_conn_free(c);
        return;
    }
    if (c->paused) {
        c->paused = false;
        bufferevent_enable(bev, EV_READ);
        rdns_tcp_read(bev, c);
    }
}

static void rdns_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct rdns_conn *c = arg;

    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        /* the client half-closed: send what it asked for, then close */
        c->closing = true;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    rdns_conn_free(c);
}

static void rdns_tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct rdns_server *s = arg;
    struct timeval idle = {LIM_DNS_TCP_IDLE_MS / 1000, (LIM_DNS_TCP_IDLE_MS % 1000) * 1000};
    struct rdns_conn *c = NULL;

    (void)l;
    (void)sa;
    (void)salen;
    if (s->n_conns >= LIM_DNS_TCP_CONNS_MAX) {
        s->stats.tcp_refused_conns++;
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c)
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c || !c->bev) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->s = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    bufferevent_setcb(c->bev, rdns_tcp_read, rdns_tcp_write, rdns_tcp_event, c);
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    if (bufferevent_enable(c->bev, EV_READ) != 0)
        rdns_conn_free(c);
}

/* ------------------------------------------------------- the server -- */

int rdns_domain_check(const char *domain, char *err, size_t errlen)
{
    size_t len = strlen(domain), label = 0, i;

    if (len > 0 && domain[len - 1] == '.')
        len--;
    if (len == 0 || len > LIM_DNS_DOMAIN_MAX) {
        errbuf_set(err, errlen, "the domain must have 1 to %d characters", LIM_DNS_DOMAIN_MAX);
        return -1;
    }
    for (i = 0; i <= len; i++) {
        char c = i < len ? domain[i] : '.';

        if (c == '.') {
            if (label == 0 || label > 63) {
                errbuf_set(err, errlen, "the domain's labels must have 1 to 63 characters");
                return -1;
            }
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            label++;
        } else {
            errbuf_set(err, errlen, "the domain may hold only letters, digits, '-' and dots");
            return -1;
        }
    }
    return 0;
}

/* The registry's own address from addr (borrowed; NULL allowed), as the
 * Consul HTTP API names it: an IP literal is itself, a wildcard or
 * anything else 127.0.0.1. */
static void rdns_self_set(struct rdns_server *s, const char *addr)
{
    static const uint8_t any6[16];

    s->self_family = addr ? rdns_host_family(addr, s->self_addr) : 0;
    if ((s->self_family == AF_INET && memcmp(s->self_addr, "\0\0\0\0", 4) == 0) ||
        (s->self_family == AF_INET6 && memcmp(s->self_addr, any6, 16) == 0))
        s->self_family = 0;
    if (!s->self_family) {
        s->self_family = AF_INET;
        memcpy(s->self_addr, "\x7f\0\0\x01", 4);
    }
    if (!inet_ntop(s->self_family, s->self_addr, s->self_host, sizeof(s->self_host)))
        snprintf(s->self_host, sizeof(s->self_host), "127.0.0.1");
}

struct rdns_server *rdns_new(struct event_base *base, const struct reg_registry *reg,
                             const struct rdns_options *opt, char *err, size_t errlen)
{
    struct rdns_server *s = NULL;
    struct sockaddr_storage ss;
    int sslen = (int)sizeof(ss), fd = -1, rcvbuf = LIM_DNS_UDP_RCVBUF;
    size_t len;

    if (rdns_domain_check(opt->domain, err, errlen) != 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s) {
        errbuf_set(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->reg = reg;
    snprintf(s->domain, sizeof(s->domain), "%s", opt->domain);
    len = strlen(s->domain);
    if (len > 0 && s->domain[len - 1] == '.')
        s->domain[--len] = '\0';
    s->domain_len = len;
    snprintf(s->node, sizeof(s->node), "%s", opt->node ? opt->node : "");
    s->ttl = opt->ttl_s;
    snprintf(s->dc, sizeof(s->dc), "%s",
             opt->datacenter && opt->datacenter[0] ? opt->datacenter : "dc1");
    s->http_port = opt->http_port > 0 && opt->http_port <= 65535 ? (int)opt->http_port : 0;
    s->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
    rdns_self_set(s, opt->node_addr ? opt->node_addr : opt->bind);
    memset(&ss, 0, sizeof(ss));
    if (evutil_parse_sockaddr_port(opt->bind, (struct sockaddr *)&ss, &sslen) != 0) {
        errbuf_set(err, errlen, "dns: '%.64s' is not an IP address to bind", opt->bind);
        goto fail;
    }
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)opt->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)opt->port);
    if (opt->no_sockets)
        return s;
    fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0 || evutil_make_socket_nonblocking(fd) != 0 ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0) {
        errbuf_set(err, errlen, "dns: cannot listen on udp %s port %ld: %s", opt->bind, opt->port,
                   strerror(errno));
        goto fail;
    }
    /* a burst of queries waits in the kernel, not in our memory */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    s->udp = evdns_add_server_port_with_base(base, fd, 0, rdns_udp_request, s);
    if (!s->udp) {
        errbuf_set(err, errlen, "dns: cannot set up the UDP server");
        goto fail;
    }
    fd = -1; /* the port owns it now */
    s->tcp =
        evconnlistener_new_bind(base, rdns_tcp_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                128, (struct sockaddr *)&ss, sslen);
    if (!s->tcp) {
        errbuf_set(err, errlen, "dns: cannot listen on tcp %s port %ld: %s", opt->bind, opt->port,
                   strerror(errno));
        goto fail;
    }
    return s;
fail:
    if (fd >= 0)
        close(fd);
    rdns_free(s);
    return NULL;
}

void rdns_free(struct rdns_server *s)
{
    if (!s)
        return;
    while (s->conns)
        rdns_conn_free(s->conns);
    rdns_cache_free(&s->cache);
    if (s->tcp)
        evconnlistener_free(s->tcp);
    if (s->udp)
        evdns_close_server_port(s->udp);
    free(s);
}

void rdns_get_stats(const struct rdns_server *s, struct rdns_stats *out) { *out = s->stats; }

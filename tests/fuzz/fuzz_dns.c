/* fuzz_dns.c: libFuzzer harness for the registry's DNS answers as the TCP
 * side gives them (rdns_answer_wire): the fuzz data is one query message,
 * parsed by hand (header, one question, labels without pointers), its name
 * classified under the domain (service, tag, RFC 2782, node, addr) and
 * answered from a registry over the in-memory store holding a few
 * instances (IPv4, IPv6, a DNS-name host, tags, and more of one name than
 * LIM_DNS_ANSWERS_MAX). Each query is answered twice, within 512 and
 * 65535 bytes, and each answer is walked: within its cap, the query's id,
 * QR set, the same rcode both times, every name well formed (the only
 * pointer is the one to the question at offset 12), the counts matching
 * the records exactly, nothing after them. Besides crashes and leaks, any
 * broken contract aborts. */
#include "core/limits.h"
#include "registry/api/codec.h"
#include "registry/api/dns.h"
#include "registry/core/catalog.h"
#include "registry/store/store.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct store *store;
static struct reg_registry *reg;
static struct rdns_server *dns;
static uint8_t out[LIM_DNS_TCP_MAX];

static void done(void *arg, int rc, const char *err)
{
    (void)arg;
    (void)err;
    if (rc != 0)
        abort(); /* the memory store does not fail */
}

static void add(const char *name, const char *host, int port, const char *tag)
{
    struct reg_spec spec;
    char id[LIM_ID_MAX + 1], err[256];
    bool created;
    int rounds = 0;

    reg_spec_init(&spec);
    snprintf(spec.name, sizeof(spec.name), "%s", name);
    snprintf(spec.host, sizeof(spec.host), "%s", host);
    spec.port = port;
    if (tag && reg_spec_add_tag(&spec, tag, strlen(tag)) != 0)
        abort();
    if (reg_register(reg, &spec, done, NULL, id, &created, err, sizeof(err)) != 0)
        abort();
    reg_spec_clear(&spec);
    while (store_pending(store) > 0)
        if (rounds++ > 1000 || event_base_loop(base, EVLOOP_ONCE) == -1)
            abort();
}

static void setup(void)
{
    struct reg_options opt;
    struct rdns_options dopt;
    char err[256], host[32];
    int i;

    base = event_base_new();
    store = base ? store_memory_open(base) : NULL;
    memset(&opt, 0, sizeof(opt));
    opt.codec = &regc_codec;
    reg = store ? reg_new(store, &opt) : NULL;
    if (!reg)
        abort();
    add("web", "127.0.0.2", 8080, "v1");
    add("web", "::1", 8081, "v2");
    add("web", "a.example.org", 8082, NULL);
    add("web.dotted", "10.1.1.1", 1, NULL);
    for (i = 0; i < LIM_DNS_ANSWERS_MAX + 40; i++) {
        snprintf(host, sizeof(host), "10.0.%d.%d", i / 250, i % 250 + 1);
        add("many", host, 1000 + i, i % 2 ? "odd" : NULL);
    }
    memset(&dopt, 0, sizeof(dopt));
    dopt.bind = "127.0.0.1";
    dopt.port = 8600;
    dopt.domain = "consul.";
    dopt.node = "fuzznode";
    dopt.ttl_s = 5;
    dopt.no_sockets = true;
    dns = rdns_new(base, reg, &dopt, err, sizeof(err));
    if (!dns)
        abort();
}

static unsigned get16(const uint8_t *p) { return (unsigned)(p[0] << 8 | p[1]); }

/* The position after the name at pos in the answer m (len bytes). */
static size_t walk_name(const uint8_t *m, size_t len, size_t pos)
{
    size_t wire = 0;

    for (;;) {
        unsigned l;

        if (pos >= len)
            abort();
        l = m[pos];
        if (l == 0)
            return pos + 1;
        if ((l & 0xc0) == 0xc0) {
            if (pos + 1 >= len || (get16(m + pos) & 0x3fff) != 12)
                abort();
            return pos + 2;
        }
        if (l > 63)
            abort();
        wire += 1 + l;
        if (wire + 1 > 255)
            abort();
        pos += 1 + l;
    }
}

/* Walk one answer of n bytes to query q; its rcode. */
static unsigned check_answer(const uint8_t *q, const uint8_t *m, size_t n, size_t cap)
{
    size_t pos = 12, i, records;

    if (n > cap || n < 12)
        abort();
    if (get16(m) != get16(q) || !(m[2] & 0x80))
        abort();
    if (get16(m + 4) > 1)
        abort();
    for (i = 0; i < get16(m + 4); i++) {
        pos = walk_name(m, n, pos) + 4;
        if (pos > n)
            abort();
    }
    records = (size_t)get16(m + 6) + get16(m + 8) + get16(m + 10);
    for (i = 0; i < records; i++) {
        pos = walk_name(m, n, pos);
        if (pos + 10 > n)
            abort();
        pos += 10 + get16(m + pos + 8);
        if (pos > n)
            abort();
    }
    if (pos != n)
        abort();
    return m[3] & 15;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;

    if (!dns)
        setup();
    n1 = rdns_answer_wire(dns, data, size, out, LIM_DNS_UDP_MAX);
    if (n1 == 0) {
        /* no answer: too short, or itself an answer */
        if (size >= 12 && !(data[2] & 0x80))
            abort();
        return 0;
    }
    {
        unsigned rc1 = check_answer(data, out, n1, LIM_DNS_UDP_MAX);

        n2 = rdns_answer_wire(dns, data, size, out, sizeof(out));
        if (check_answer(data, out, n2, sizeof(out)) != rc1)
            abort();
    }
    return 0;
}

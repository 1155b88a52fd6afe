/* dns.h: the registry's DNS interface, like Consul's on port 8600: the
 * passing instances of a service as A/AAAA/SRV records under a domain
 * ("consul." by default), read from the core with its read API (no
 * writes). UDP through libevent's own DNS server (evdns_add_server_port),
 * TCP through a small listener on the same port, both answered at once
 * from one record builder (dns.c) and two writers: the evdns reply calls
 * for UDP, a wire encoder of our own for TCP.
 *
 * Names answered (<domain> compared case-insensitively, like every name;
 * [.<dc>] is this registry's datacenter, --datacenter, optional as in
 * Consul):
 *   [<tag>.]<name>.service[.<dc>].<domain>  A, AAAA, SRV (+ A/AAAA additional), ANY
 *   _<name>._<tag>.service[.<dc>].<domain>  the RFC 2782 form (_tcp: no tag, as in
 *                                           Consul; "service" may be left out for SRV)
 *   <node>.node[.<dc>].<domain>            the registry's own address
 *   <hex>.addr[.<dc>].<domain>             the address an SRV target names
 *   <domain>                               SOA
 * "consul" is the registry itself, as in Consul: consul.service.<domain>
 * answers its own address and HTTP port beside any instance registered
 * under that name. Another datacenter (one label only, as in Consul):
 * NXDOMAIN with the SOA, Consul's answer for a datacenter it has no path
 * to. Outside the domain: REFUSED; unknown under it: NXDOMAIN with the SOA. */
#ifndef REG_API_DNS_H
#define REG_API_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct reg_registry;
struct rdns_server;

struct rdns_options {
    const char *bind;       /* address to listen on (an IP literal); borrowed for rdns_new */
    long port;              /* 1..65535: UDP and TCP */
    const char *domain;     /* e.g. "consul." (the trailing dot is optional); copied */
    const char *node;       /* this registry's node name; copied */
    const char *datacenter; /* this registry's datacenter (--datacenter); copied; NULL: "dc1" */
    const char *node_addr;  /* the registry's own address (--bind): node lookups and
                               the consul service; NULL: bind; a wildcard or not an IP
                               literal: 127.0.0.1 (as the Consul HTTP API names it) */
    long http_port;         /* the registry's HTTP port: the consul service's SRV port */
    uint32_t ttl_s;         /* TTL of every record */
    bool no_sockets;        /* tests and the fuzzer: build answers only (rdns_answer_wire) */
};

/* Check a --domain value: labels of [A-Za-z0-9-] (1..63 bytes), at most
 * LIM_DNS_DOMAIN_MAX bytes, an optional trailing dot. 0, or -1 with err. */
int rdns_domain_check(const char *domain, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Listen on opt->bind:opt->port (UDP and TCP) and answer from reg
 * (borrowed; must outlive the server) on base (borrowed). Caller frees.
 * NULL with err when a socket cannot be bound or out of memory. */
struct rdns_server *rdns_new(struct event_base *base, const struct reg_registry *reg,
                             const struct rdns_options *opt, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Close the sockets and the TCP connections, free everything. Accepts NULL. */
void rdns_free(struct rdns_server *s);

/* Answer one DNS query message (query, len bytes, borrowed; no TCP length
 * prefix) into out (cap bytes, at most 65535 used), as the TCP side does:
 * records that do not fit in cap are left out (TC set when an answer or
 * authority record was). Returns the answer's length, or 0 when the query
 * gets no answer (shorter than a header, or itself an answer). */
size_t rdns_answer_wire(struct rdns_server *s, const uint8_t *query, size_t len, uint8_t *out,
                        size_t cap);

/* Answers given and queries dropped, for the tests and the log. */
struct rdns_stats {
    uint64_t udp_answers, tcp_answers, truncated, dropped, tcp_refused_conns;
};
void rdns_get_stats(const struct rdns_server *s, struct rdns_stats *out);

#endif

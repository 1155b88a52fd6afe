/* etcdload.c: the reference of the ha benchmark's register row: etcd's own
 * lease grant and put of the records a registry stores, closed loop.
 *
 * For each of N records it POSTs /v3/lease/grant {"TTL":T} to etcd's v3
 * JSON gateway on 127.0.0.1:PORT, then /v3/kv/put {"key","value","lease"}
 * with the lease's ID; key and value are base64 of "<PREFIX><id>" and of a
 * document shaped as the registry's stored one (README "Storage":
 * {"v":1,"id","name","host","port","type","tags","metadata","ttl"}), the id
 * "<name>-<uuid4>" as the registry makes it. C keep-alive connections, one
 * request outstanding on each (no pipelining), like bench/regload.c; a
 * record is done when its put answered 200. Time is from the first request
 * sent to the last put answered; the latency is a record's, from its grant
 * sent to its put answered.
 *
 * Usage: etcdload PORT N CONC PREFIX [NAMES] [TTL] [DEADLINE_S]
 *   record i has name "svc-<i % NAMES>" (NAMES defaults to 1000), TTL 10,
 *   and the run aborts after DEADLINE_S seconds (default 120).
 * Prints one line:
 *   ok=N fail=N elapsed_s=X rps=X p50_ms=X p99_ms=X doc_bytes=X key_bytes=X
 * (doc_bytes and key_bytes: the mean document and key, before base64).
 * Exit status 0 only if all N records were put.
 *
 * Built by bench/run.sh:  gcc -O2 -std=c11 -o etcdload bench/etcdload.c
 * (the connections, the reading of responses and the percentiles are
 * bench/loadconn.h's)  */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadconn.h"

enum step { STEP_IDLE, STEP_GRANT, STEP_PUT };

struct conn {
    struct lc_conn lc; /* the keep-alive connection */
    long rec;          /* index of the record in progress, -1 if none */
    enum step step;    /* what the outstanding request is */
    double started_at; /* when the record's grant was sent (s) */
};

struct run {
    int port, names, ttl;
    const char *prefix;
    double doc_bytes, key_bytes; /* sums over the records sent */
    uint64_t rng;                /* xorshift state for the uuids */
};

static uint64_t rng_next(struct run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* A random uuid4 text into out (37 bytes). */
static void uuid4(struct run *r, char *out)
{
    unsigned char b[16];
    uint64_t x = rng_next(r), y = rng_next(r);

    memcpy(b, &x, 8);
    memcpy(b + 8, &y, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* base64 of in[0..n) into out (NUL-terminated); returns its length. out
 * must hold 4 * ((n + 2) / 3) + 1 bytes. */
static size_t b64(const char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)in;
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = tab[s[i] >> 2];
        out[o++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        out[o++] = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        out[o++] = tab[s[i + 2] & 63];
    }
    if (i < n) {
        out[o++] = tab[s[i] >> 2];
        if (i + 1 < n) {
            out[o++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
            out[o++] = tab[(s[i + 1] & 15) << 2];
        } else {
            out[o++] = tab[(s[i] & 3) << 4];
            out[o++] = '=';
        }
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Write one POST of body to path on c (the send buffer is empty: one
 * request in flight at most, so a write of a few hundred bytes completes). */
static void post(struct conn *c, int port, const char *path, const char *body, size_t blen)
{
    char req[4096];
    int rlen;

    rlen = snprintf(req, sizeof(req),
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
                    path, port, blen, (int)blen, body);
    if (rlen <= 0 || (size_t)rlen >= sizeof(req)) {
        fprintf(stderr, "etcdload: request too long\n");
        exit(2);
    }
    lc_send(&c->lc, "etcdload", req, (size_t)rlen);
}

static void send_grant(struct conn *c, struct run *r, long i)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"TTL\":%d}", r->ttl);

    c->rec = i;
    c->step = STEP_GRANT;
    c->started_at = lc_now_s();
    post(c, r->port, "/v3/lease/grant", body, (size_t)n);
}

/* The put of record c->rec under lease (the grant's "ID", a decimal text). */
static void send_put(struct conn *c, struct run *r, const char *lease)
{
    char uuid[37], id[128], key[512], doc[1024], kb[700], db[1400], body[2400];
    long i = c->rec;
    int klen, dlen, blen;

    uuid4(r, uuid);
    snprintf(id, sizeof(id), "svc-%ld-%s", i % r->names, uuid);
    klen = snprintf(key, sizeof(key), "%s%s", r->prefix, id);
    dlen = snprintf(doc, sizeof(doc),
                    "{\"v\":1,\"id\":\"%s\",\"name\":\"svc-%ld\",\"host\":\"127.0.0.1\","
                    "\"port\":%ld,\"type\":\"service\",\"tags\":[\"bench\",\"v1\"],"
                    "\"metadata\":{\"zone\":\"local\",\"version\":\"1.0.0\"},\"ttl\":%d}",
                    id, i % r->names, 1024 + i % 60000, r->ttl);
    r->key_bytes += klen;
    r->doc_bytes += dlen;
    b64(key, (size_t)klen, kb);
    b64(doc, (size_t)dlen, db);
    blen = snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}", kb,
                    db, lease);
    c->step = STEP_PUT;
    post(c, r->port, "/v3/kv/put", body, (size_t)blen);
}

/* The lease ID of a grant's answer into out (digits only); 0, or -1. */
static int grant_id(const char *body, size_t blen, char *out, size_t cap)
{
    const char *p = memmem(body, blen, "\"ID\":\"", 6);
    size_t n = 0;

    if (!p)
        return -1;
    p += 6;
    while (p + n < body + blen && p[n] >= '0' && p[n] <= '9' && n + 1 < cap)
        n++;
    if (n == 0 || p + n >= body + blen || p[n] != '"')
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    struct run r = {.names = 1000, .ttl = 10};
    int conc, ep, i;
    long n, next = 0, done = 0, ok = 0, fail = 0;
    double deadline_s = 120, t0, t_end, *lat;
    struct conn *conns;
    struct epoll_event evs[256];

    if (argc < 5) {
        fprintf(stderr, "usage: etcdload PORT N CONC PREFIX [NAMES] [TTL] [DEADLINE_S]\n");
        return 2;
    }
    r.port = atoi(argv[1]);
    n = atol(argv[2]);
    conc = atoi(argv[3]);
    r.prefix = argv[4];
    if (argc > 5)
        r.names = atoi(argv[5]);
    if (argc > 6)
        r.ttl = atoi(argv[6]);
    if (argc > 7)
        deadline_s = atof(argv[7]);
    if (r.port <= 0 || n <= 0 || conc <= 0 || conc > 1024 || r.names <= 0 || r.ttl <= 0 ||
        strlen(r.prefix) > 200)
        return 2;
    r.rng = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 32 ^ 0x9e3779b97f4a7c15u;
    lat = calloc((size_t)n, sizeof(*lat));
    conns = calloc((size_t)conc, sizeof(*conns));
    if (!lat || !conns)
        lc_die("setup");
    ep = lc_epoll_new();
    for (i = 0; i < conc; i++) {
        lc_conn_open(&conns[i].lc, ep, r.port, (uint32_t)i);
        conns[i].rec = -1;
    }
    t0 = lc_now_s();
    for (i = 0; i < conc && next < n; i++)
        send_grant(&conns[i], &r, next++);

    /* Bounded: ends when all n records are done or at the deadline. */
    while (done < n) {
        int k, nev;

        if (lc_now_s() - t0 > deadline_s) {
            fprintf(stderr, "etcdload: deadline of %.0f s reached after %ld records\n", deadline_s,
                    done);
            break;
        }
        nev = lc_epoll_wait(ep, evs, 256, 1000);
        for (k = 0; k < nev; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            struct lc_resp resp;
            enum lc_read_result got = lc_read(&c->lc, &resp);
            char lease[32];

            if (got == LC_READ_MORE)
                continue;
            if (got == LC_READ_CLOSED) {
                fprintf(stderr, "etcdload: connection closed by etcd\n");
                return 2;
            }
            if (got != LC_READ_DONE) {
                fprintf(stderr, "etcdload: %s\n", lc_read_text(got));
                return 2;
            }
            if (c->step == STEP_GRANT && resp.status == 200 &&
                grant_id(resp.body, resp.blen, lease, sizeof(lease)) == 0) {
                send_put(c, &r, lease);
                continue;
            }
            /* a put answered, or a grant that failed: the record is done */
            lat[done++] = lc_now_s() - c->started_at;
            if (c->step == STEP_PUT && resp.status == 200)
                ok++;
            else
                fail++;
            c->rec = -1;
            c->step = STEP_IDLE;
            if (next < n)
                send_grant(c, &r, next++);
        }
    }
    t_end = lc_now_s();
    for (i = 0; i < conc; i++)
        lc_conn_close(&conns[i].lc);
    close(ep);
    lc_lat_sort(lat, done);
    printf("ok=%ld fail=%ld elapsed_s=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f doc_bytes=%.0f "
           "key_bytes=%.0f\n",
           ok, fail, t_end - t0, (double)done / (t_end - t0), lc_lat_ms(lat, done, 0.5),
           lc_lat_ms(lat, done, 0.99), ok ? r.doc_bytes / ok : 0.0, ok ? r.key_bytes / ok : 0.0);
    free(lat);
    free(conns);
    return (ok == n && fail == 0) ? 0 : 1;
}

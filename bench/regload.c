/* regload.c: a tiny closed-loop load generator for the registry benchmark.
 *
 * It POSTs exactly N distinct registrations to /v1/services on 127.0.0.1,
 * keeping C requests in flight (C keep-alive connections, one outstanding
 * request each, no pipelining), measures the wall-clock time from the first
 * request sent to the last response received, and writes every returned
 * service_id to a file (one a line) for the renew scenario.
 *
 * wrk cannot do this well: it always runs for its full -d duration even when
 * a script stops its thread early, so it cannot time "N requests".
 *
 * Usage: regload PORT N CONC IDS_FILE [NAMES] [DEADLINE_S] [TTL] [PREFIX]
 *   registration i has name "<PREFIX>-<i % NAMES>" (NAMES defaults to 1000,
 *   PREFIX to "svc") and ttl TTL (default 600); the run aborts after
 *   DEADLINE_S seconds (default 120).
 * Prints one line:  ok=N fail=N elapsed_s=X rps=X p50_ms=X p99_ms=X
 * Exit status 0 only if all N requests got 201 and a service_id.
 *
 * Built by bench/run.sh:  gcc -O2 -std=c11 -o regload bench/regload.c
 * (the connections, the reading of responses and the percentiles are
 * bench/loadconn.h's)  */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadconn.h"

struct conn {
    struct lc_conn lc; /* the keep-alive connection */
    long req;          /* index of the outstanding request, -1 if none */
    double sent_at;    /* when it was sent (s) */
};

/* Send registration i on c. */
static void send_req(struct conn *c, long i, int names, int port, int ttl, const char *prefix)
{
    char body[512], req[1024];
    int blen, rlen;

    blen = snprintf(body, sizeof(body),
                    "{\"name\":\"%s-%ld\",\"host\":\"127.0.0.1\",\"port\":%ld,"
                    "\"ttl\":%d,\"tags\":[\"bench\",\"v1\"],"
                    "\"metadata\":{\"zone\":\"local\",\"version\":\"1.0.0\"}}",
                    prefix, i % names, 1024 + i % 60000, ttl);
    rlen = snprintf(req, sizeof(req),
                    "POST /v1/services HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                    port, blen, body);
    lc_send(&c->lc, "regload", req, (size_t)rlen);
    c->req = i;
    c->sent_at = lc_now_s();
}

int main(int argc, char **argv)
{
    int port, conc, names = 1000, ttl = 600, ep, i;
    const char *prefix = "svc";
    long n, next = 0, done = 0, ok = 0, fail = 0;
    double deadline_s = 120, t0, t_end, *lat;
    FILE *ids;
    struct conn *conns;
    struct epoll_event evs[256];

    if (argc < 5) {
        fprintf(stderr,
                "usage: regload PORT N CONC IDS_FILE [NAMES] [DEADLINE_S] [TTL] [PREFIX]\n");
        return 2;
    }
    port = atoi(argv[1]);
    n = atol(argv[2]);
    conc = atoi(argv[3]);
    if (argc > 5)
        names = atoi(argv[5]);
    if (argc > 6)
        deadline_s = atof(argv[6]);
    if (argc > 7)
        ttl = atoi(argv[7]);
    if (argc > 8)
        prefix = argv[8];
    if (port <= 0 || n <= 0 || conc <= 0 || conc > 1024 || names <= 0 || ttl < 0 ||
        strlen(prefix) > 100)
        return 2;
    ids = fopen(argv[4], "w");
    lat = calloc((size_t)n, sizeof(*lat));
    conns = calloc((size_t)conc, sizeof(*conns));
    if (!ids || !lat || !conns)
        lc_die("setup");
    ep = lc_epoll_new();

    for (i = 0; i < conc; i++) {
        lc_conn_open(&conns[i].lc, ep, port, (uint32_t)i);
        conns[i].req = -1;
    }
    t0 = lc_now_s();
    for (i = 0; i < conc && next < n; i++)
        send_req(&conns[i], next++, names, port, ttl, prefix);

    /* Bounded: ends when all n are answered or at the deadline. */
    while (done < n) {
        int k, nev;

        if (lc_now_s() - t0 > deadline_s) {
            fprintf(stderr, "regload: deadline of %.0f s reached after %ld responses\n", deadline_s,
                    done);
            break;
        }
        nev = lc_epoll_wait(ep, evs, 256, 1000);
        for (k = 0; k < nev; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            struct lc_resp resp;
            enum lc_read_result got = lc_read(&c->lc, &resp);
            const char *idp;

            if (got == LC_READ_MORE)
                continue;
            if (got == LC_READ_CLOSED) {
                fprintf(stderr, "regload: connection closed by the server\n");
                return 2;
            }
            if (got != LC_READ_DONE) {
                fprintf(stderr, "regload: %s\n", lc_read_text(got));
                return 2;
            }
            lat[done++] = lc_now_s() - c->sent_at;
            idp = memmem(resp.body, resp.blen, "\"service_id\":\"", 14);
            if (resp.status == 201 && idp) {
                const char *e;

                idp += 14;
                e = memchr(idp, '"', resp.blen - (size_t)(idp - resp.body));
                if (e) {
                    fprintf(ids, "%.*s\n", (int)(e - idp), idp);
                    ok++;
                } else {
                    fail++;
                }
            } else {
                fail++;
            }
            c->req = -1;
            if (next < n)
                send_req(c, next++, names, port, ttl, prefix);
        }
    }
    t_end = lc_now_s();
    for (i = 0; i < conc; i++)
        lc_conn_close(&conns[i].lc);
    close(ep);
    if (fclose(ids) != 0)
        lc_die("write ids");
    lc_lat_sort(lat, done);
    printf("ok=%ld fail=%ld elapsed_s=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f\n", ok, fail,
           t_end - t0, (double)done / (t_end - t0), lc_lat_ms(lat, done, 0.5),
           lc_lat_ms(lat, done, 0.99));
    free(lat);
    free(conns);
    return (ok == n && fail == 0) ? 0 : 1;
}

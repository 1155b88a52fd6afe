/* renewload.c: the renew generator of the ha benchmark: heartbeats of many
 * instances spread over two registry replicas, paced, for a fixed time.
 *
 * Every id of IDS_FILE (one a line, as bench/regload.c writes them) is sent
 * PUT /v1/services/<id>/renew once every PERIOD_S seconds, the sends spread
 * evenly over the period (N ids: one every PERIOD_S / N s), for DURATION_S
 * seconds. Renew k goes to replica (k + k / N) % 2 (A on PORT_A, B on
 * PORT_B), so an id alternates between the replicas from one round to the
 * next: both see every instance renewed. CONC keep-alive connections per
 * replica, one request outstanding on each; a renew due while every
 * connection of its replica is busy waits (its lateness is reported).
 *
 * With PERIOD_S 0 it is one pass, unpaced, of DELETE /v1/services/<id>
 * (the clean-up after the window), replica alternating per id, bounded by
 * DURATION_S.
 *
 * Usage: renewload PORT_A PORT_B IDS_FILE PERIOD_S DURATION_S CONC
 * Prints one line:
 *   sent=N ok=N fail=N to_a=N to_b=N elapsed_s=X rps=X p50_ms=X p99_ms=X late_max_ms=X
 * (latency: each request's, sent to answered; late_max: the most a renew
 * was sent after its due time). Exit status 0 only if every answer was
 * 200.
 *
 * Built by bench/run.sh:  gcc -O2 -std=c11 -o renewload bench/renewload.c
 * (the connections, the reading of responses and the percentiles are
 * bench/loadconn.h's)  */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LC_BUF_CAP 8192 /* answers of renew and DELETE are small */
#include "loadconn.h"

#define ID_MAX 200

struct conn {
    struct lc_conn lc; /* the keep-alive connection */
    int replica;       /* 0: A, 1: B */
    int busy;          /* a request is outstanding */
    double sent_at;    /* when it was sent (s) */
};

/* Every id of path, one a line; *n their count. Caller frees the array and
 * each string. */
static char **read_ids(const char *path, long *n)
{
    FILE *f = fopen(path, "r");
    char line[ID_MAX + 2], **ids = NULL;
    long cap = 0;

    *n = 0;
    if (!f)
        lc_die(path);
    while (fgets(line, sizeof(line), f)) {
        size_t l = strcspn(line, "\r\n");

        if (l == 0)
            continue;
        line[l] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            ids = realloc(ids, (size_t)cap * sizeof(*ids));
            if (!ids)
                lc_die("realloc");
        }
        ids[*n] = strdup(line);
        if (!ids[*n])
            lc_die("strdup");
        (*n)++;
    }
    fclose(f);
    return ids;
}

static void send_req(struct conn *c, const char *id, int port, int del)
{
    char req[512];
    int rlen;

    if (del)
        rlen = snprintf(req, sizeof(req),
                        "DELETE /v1/services/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", id, port);
    else
        rlen = snprintf(req, sizeof(req),
                        "PUT /v1/services/%s/renew HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                        "Content-Length: 0\r\n\r\n",
                        id, port);
    lc_send(&c->lc, "renewload", req, (size_t)rlen);
    c->busy = 1;
    c->sent_at = lc_now_s();
}

/* A free connection to replica rep, or NULL. */
static struct conn *free_conn(struct conn *conns, int total, int rep)
{
    int i;

    for (i = 0; i < total; i++) {
        if (conns[i].replica == rep && !conns[i].busy)
            return &conns[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int ports[2], conc, total, ep, i, del;
    long n, k = 0, to_rep[2] = {0, 0}, done = 0, ok = 0, fail = 0, sent, lat_cap;
    double period, duration, t0, t_end, step, late_max = 0, *lat;
    char **ids;
    struct conn *conns;
    struct epoll_event evs[256];

    if (argc != 7) {
        fprintf(stderr, "usage: renewload PORT_A PORT_B IDS_FILE PERIOD_S DURATION_S CONC\n");
        return 2;
    }
    ports[0] = atoi(argv[1]);
    ports[1] = atoi(argv[2]);
    period = atof(argv[4]);
    duration = atof(argv[5]);
    conc = atoi(argv[6]);
    if (ports[0] <= 0 || ports[1] <= 0 || period < 0 || duration <= 0 || conc <= 0 || conc > 512)
        return 2;
    ids = read_ids(argv[3], &n);
    if (n == 0) {
        fprintf(stderr, "renewload: no ids in %s\n", argv[3]);
        return 2;
    }
    del = period == 0;
    /* renews in the window: one per period per id, plus one round's slack */
    sent = del ? n : (long)(duration / period * (double)n) + n;
    lat_cap = sent;
    step = del ? 0 : period / (double)n;
    total = 2 * conc;
    lat = calloc((size_t)lat_cap, sizeof(*lat));
    conns = calloc((size_t)total, sizeof(*conns));
    if (!lat || !conns)
        lc_die("setup");
    ep = lc_epoll_new();
    for (i = 0; i < total; i++) {
        conns[i].replica = i % 2;
        lc_conn_open(&conns[i].lc, ep, ports[i % 2], (uint32_t)i);
    }

    /* Bounded: sends stop at the window's end (or after one pass), then the
     * outstanding answers are awaited for at most 10 s more. */
    t0 = lc_now_s();
    for (;;) {
        double t = lc_now_s(), wait_s;
        int nev, busy = 0;

        /* send what is due, while its replica has a free connection */
        while ((del ? k < n : (double)k * step < duration) && (del || t0 + (double)k * step <= t) &&
               k < lat_cap) {
            int rep = (int)((k + k / n) % 2);
            struct conn *c = free_conn(conns, total, rep);

            if (!c)
                break;
            if (!del && t - (t0 + (double)k * step) > late_max)
                late_max = t - (t0 + (double)k * step);
            send_req(c, ids[k % n], ports[rep], del);
            to_rep[rep]++;
            k++;
        }
        for (i = 0; i < total; i++)
            busy += conns[i].busy;
        if (busy == 0 && (del ? k >= n : (double)k * step >= duration))
            break;
        if (t - t0 > duration + 10 && !del) {
            fprintf(stderr, "renewload: answers still missing 10 s after the window\n");
            break;
        }
        if (del && t - t0 > duration) {
            fprintf(stderr, "renewload: the pass did not finish within %.0f s\n", duration);
            break;
        }
        wait_s = del ? 1.0 : t0 + (double)k * step - t;
        if (wait_s < 0.001)
            wait_s = 0.001;
        if (wait_s > 1.0)
            wait_s = 1.0;
        nev = lc_epoll_wait(ep, evs, 256, (int)(wait_s * 1000));
        for (i = 0; i < nev; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            struct lc_resp resp;
            enum lc_read_result got = lc_read(&c->lc, &resp);

            if (got == LC_READ_MORE)
                continue;
            if (got == LC_READ_CLOSED && !c->busy) {
                /* an idle keep-alive connection the server timed out (the
                 * first free one is always taken, so some stay idle long):
                 * open it again */
                lc_conn_close(&c->lc);
                lc_conn_open(&c->lc, ep, ports[c->replica], evs[i].data.u32);
                continue;
            }
            if (got == LC_READ_CLOSED) {
                fprintf(stderr, "renewload: connection closed by the server\n");
                return 2;
            }
            if (got != LC_READ_DONE) {
                fprintf(stderr, "renewload: %s\n", lc_read_text(got));
                return 2;
            }
            lat[done++] = lc_now_s() - c->sent_at;
            if (resp.status == 200)
                ok++;
            else
                fail++;
            c->busy = 0;
        }
    }
    t_end = lc_now_s();
    for (i = 0; i < total; i++)
        lc_conn_close(&conns[i].lc);
    close(ep);
    lc_lat_sort(lat, done);
    printf("sent=%ld ok=%ld fail=%ld to_a=%ld to_b=%ld elapsed_s=%.3f rps=%.0f p50_ms=%.3f "
           "p99_ms=%.3f late_max_ms=%.1f\n",
           k, ok, fail, to_rep[0], to_rep[1], t_end - t0, (double)done / (t_end - t0),
           lc_lat_ms(lat, done, 0.5), lc_lat_ms(lat, done, 0.99), late_max * 1e3);
    for (i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(lat);
    free(conns);
    return (ok == k && fail == 0 && done == k) ? 0 : 1;
}

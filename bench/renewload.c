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
 * Built by bench/run.sh:  gcc -O2 -std=c11 -o renewload bench/renewload.c  */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 8192
#define ID_MAX  200

struct conn {
    int fd;
    int replica;       /* 0: A, 1: B */
    int busy;          /* a request is outstanding */
    double sent_at;    /* when it was sent (s) */
    char buf[BUF_CAP]; /* response bytes received so far */
    size_t len;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void die(const char *msg)
{
    perror(msg);
    exit(2);
}

static int connect_to(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        die("socket");
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        die("fcntl");
    return fd;
}

/* Every id of path, one a line; *n their count. Caller frees the array and
 * each string. */
static char **read_ids(const char *path, long *n)
{
    FILE *f = fopen(path, "r");
    char line[ID_MAX + 2], **ids = NULL;
    long cap = 0;

    *n = 0;
    if (!f)
        die(path);
    while (fgets(line, sizeof(line), f)) {
        size_t l = strcspn(line, "\r\n");

        if (l == 0)
            continue;
        line[l] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            ids = realloc(ids, (size_t)cap * sizeof(*ids));
            if (!ids)
                die("realloc");
        }
        ids[*n] = strdup(line);
        if (!ids[*n])
            die("strdup");
        (*n)++;
    }
    fclose(f);
    return ids;
}

static void send_req(struct conn *c, const char *id, int port, int del)
{
    char req[512];
    int rlen;
    ssize_t w;

    if (del)
        rlen = snprintf(req, sizeof(req),
                        "DELETE /v1/services/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", id, port);
    else
        rlen = snprintf(req, sizeof(req),
                        "PUT /v1/services/%s/renew HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                        "Content-Length: 0\r\n\r\n",
                        id, port);
    w = write(c->fd, req, (size_t)rlen);
    if (w != rlen) {
        fprintf(stderr, "renewload: short write (%zd of %d)\n", w, rlen);
        exit(2);
    }
    c->busy = 1;
    c->len = 0;
    c->sent_at = now_s();
}

/* If c->buf holds a whole response, return its total length and set
 * *status; 0 if more bytes are needed; -1 on garbage. */
static long parse_resp(struct conn *c, int *status)
{
    char *end, *p;
    long clen = -1;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len >= BUF_CAP - 1 ? -1 : 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
        return -1;
    for (p = strstr(c->buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = strtol(p + 17, NULL, 10);
    }
    if (clen < 0)
        return -1; /* the registry always sends Content-Length */
    if ((size_t)(end + 4 - c->buf) + (size_t)clen > c->len)
        return (size_t)(end + 4 - c->buf) + (size_t)clen >= BUF_CAP ? -1 : 0;
    return (long)(end + 4 - c->buf) + clen;
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
    struct epoll_event ev, evs[256];

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
        die("setup");
    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    for (i = 0; i < total; i++) {
        conns[i].replica = i % 2;
        conns[i].fd = connect_to(ports[i % 2]);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0)
            die("epoll_ctl");
    }

    /* Bounded: sends stop at the window's end (or after one pass), then the
     * outstanding answers are awaited for at most 10 s more. */
    t0 = now_s();
    for (;;) {
        double t = now_s(), wait_s;
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
        nev = epoll_wait(ep, evs, 256, (int)(wait_s * 1000));
        if (nev < 0 && errno != EINTR)
            die("epoll_wait");
        for (i = 0; i < nev; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            ssize_t got = read(c->fd, c->buf + c->len, BUF_CAP - 1 - c->len);
            int status = 0;
            long used;

            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0 && !c->busy) {
                /* an idle keep-alive connection the server timed out (the
                 * first free one is always taken, so some stay idle long):
                 * open it again */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = connect_to(ports[c->replica]);
                ev.events = EPOLLIN;
                ev.data.u32 = evs[i].data.u32;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
                    die("epoll_ctl");
                continue;
            }
            if (got <= 0) {
                fprintf(stderr, "renewload: connection closed by the server\n");
                return 2;
            }
            c->len += (size_t)got;
            used = parse_resp(c, &status);
            if (used < 0) {
                fprintf(stderr, "renewload: unparsable response\n");
                return 2;
            }
            if (used == 0)
                continue;
            if ((size_t)used != c->len) {
                fprintf(stderr, "renewload: unexpected extra bytes\n");
                return 2;
            }
            lat[done++] = now_s() - c->sent_at;
            if (status == 200)
                ok++;
            else
                fail++;
            c->busy = 0;
        }
    }
    t_end = now_s();
    for (i = 0; i < total; i++)
        close(conns[i].fd);
    close(ep);
    qsort(lat, (size_t)done, sizeof(*lat), cmp_double);
    printf("sent=%ld ok=%ld fail=%ld to_a=%ld to_b=%ld elapsed_s=%.3f rps=%.0f p50_ms=%.3f "
           "p99_ms=%.3f late_max_ms=%.1f\n",
           k, ok, fail, to_rep[0], to_rep[1], t_end - t0, (double)done / (t_end - t0),
           done ? lat[done / 2] * 1e3 : 0.0, done ? lat[(size_t)((double)done * 0.99)] * 1e3 : 0.0,
           late_max * 1e3);
    for (i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(lat);
    free(conns);
    return (ok == k && fail == 0 && done == k) ? 0 : 1;
}

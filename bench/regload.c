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
 * Built by bench/run.sh:  gcc -O2 -std=c11 -o regload bench/regload.c  */
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

#define BUF_CAP 16384

struct conn {
    int fd;
    long req;          /* index of the outstanding request, -1 if none */
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

/* Send registration i on c. The socket's send buffer is empty (one request
 * in flight at most), so a ~250-byte write completes at once. */
static void send_req(struct conn *c, long i, int names, int port, int ttl, const char *prefix)
{
    char body[512], req[1024];
    int blen, rlen;
    ssize_t w;

    blen = snprintf(body, sizeof(body),
                    "{\"name\":\"%s-%ld\",\"host\":\"127.0.0.1\",\"port\":%ld,"
                    "\"ttl\":%d,\"tags\":[\"bench\",\"v1\"],"
                    "\"metadata\":{\"zone\":\"local\",\"version\":\"1.0.0\"}}",
                    prefix, i % names, 1024 + i % 60000, ttl);
    rlen = snprintf(req, sizeof(req),
                    "POST /v1/services HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                    port, blen, body);
    w = write(c->fd, req, (size_t)rlen);
    if (w != rlen) {
        fprintf(stderr, "regload: short write (%zd of %d)\n", w, rlen);
        exit(2);
    }
    c->req = i;
    c->len = 0;
    c->sent_at = now_s();
}

/* If c->buf holds a whole response, return its total length and set
 * *status, *body and *blen; 0 if more bytes are needed; -1 on garbage. */
static long parse_resp(struct conn *c, int *status, const char **body, size_t *blen)
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
    *body = end + 4;
    *blen = (size_t)clen;
    return (long)(end + 4 - c->buf) + clen;
}

int main(int argc, char **argv)
{
    int port, conc, names = 1000, ttl = 600, ep, i;
    const char *prefix = "svc";
    long n, next = 0, done = 0, ok = 0, fail = 0;
    double deadline_s = 120, t0, t_end, *lat;
    FILE *ids;
    struct conn *conns;
    struct epoll_event ev, evs[256];

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
        die("setup");
    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");

    for (i = 0; i < conc; i++) {
        conns[i].fd = connect_to(port);
        conns[i].req = -1;
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0)
            die("epoll_ctl");
    }
    t0 = now_s();
    for (i = 0; i < conc && next < n; i++)
        send_req(&conns[i], next++, names, port, ttl, prefix);

    /* Bounded: ends when all n are answered or at the deadline. */
    while (done < n) {
        int k, nev;

        if (now_s() - t0 > deadline_s) {
            fprintf(stderr, "regload: deadline of %.0f s reached after %ld responses\n", deadline_s,
                    done);
            break;
        }
        nev = epoll_wait(ep, evs, 256, 1000);
        if (nev < 0 && errno != EINTR)
            die("epoll_wait");
        for (k = 0; k < nev; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, BUF_CAP - 1 - c->len);
            int status = 0;
            const char *body = NULL, *idp;
            size_t blen = 0;
            long used;

            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                fprintf(stderr, "regload: connection closed by the server\n");
                return 2;
            }
            c->len += (size_t)r;
            used = parse_resp(c, &status, &body, &blen);
            if (used < 0) {
                fprintf(stderr, "regload: unparsable response\n");
                return 2;
            }
            if (used == 0)
                continue;
            if ((size_t)used != c->len) {
                fprintf(stderr, "regload: unexpected extra bytes\n");
                return 2;
            }
            lat[done++] = now_s() - c->sent_at;
            idp = memmem(body, blen, "\"service_id\":\"", 14);
            if (status == 201 && idp) {
                const char *e;

                idp += 14;
                e = memchr(idp, '"', blen - (size_t)(idp - body));
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
    t_end = now_s();
    for (i = 0; i < conc; i++)
        close(conns[i].fd);
    close(ep);
    if (fclose(ids) != 0)
        die("write ids");
    qsort(lat, (size_t)done, sizeof(*lat), cmp_double);
    printf("ok=%ld fail=%ld elapsed_s=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f\n", ok, fail,
           t_end - t0, (double)done / (t_end - t0), done ? lat[done / 2] * 1e3 : 0.0,
           done ? lat[(size_t)((double)done * 0.99)] * 1e3 : 0.0);
    free(lat);
    free(conns);
    return (ok == n && fail == 0) ? 0 : 1;
}

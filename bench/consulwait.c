/* consulwait.c: the blocking-query measurer of the registry's Consul
 * benchmark (bench/run.sh consul), on libevent.
 *
 * Against a registry on 127.0.0.1 that already lists service NAME, it
 *   1. reads the index: GET /v1/catalog/service/NAME, its X-Consul-Index;
 *   2. ROUNDS times: parks one blocking query on its own keep-alive
 *      connection (GET /v1/catalog/service/NAME?index=<X>&wait=5m on even
 *      rounds, GET /v1/health/service/NAME?passing&index=<X>&wait=5m on odd
 *      ones), waits until /metrics says registry_watchers >= 1 (parked),
 *      then sends PUT /v1/agent/service/register of a new instance of NAME
 *      (ID "NAME-wait-<round>") on a second keep-alive connection; the
 *      round's latency is CLOCK_MONOTONIC from just before that request is
 *      written to the parked query's answer complete (200, X-Consul-Index
 *      above X, the new ID in the body). The next round parks after the
 *      new index.
 * Every wait is bounded: the whole run ends at DEADLINE_S (exit 1).
 *
 * Usage: consulwait PORT NAME [ROUNDS] [DEADLINE_S]
 * Prints one line per round, then one summary line:
 *   rounds=N lat_median_ms=X lat_max_ms=X
 * Exit status 0 only when every round completed.
 *
 * Built by bench/run.sh:
 *   gcc -O2 -std=c11 -o consulwait bench/consulwait.c $(pkg-config --libs libevent) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP      (1024 * 1024) /* bytes of one answer kept (a few KB per instance) */
#define PARK_POLL_MS 5             /* between two reads of /metrics while parking */
#define ROUNDS_MAX   1000

/* One keep-alive connection with one request in flight. */
struct cconn {
    int fd;           /* -1: closed */
    struct event *ev; /* owned: EV_READ | EV_PERSIST on fd */
    char *buf;        /* owned, BUF_CAP bytes: the answer so far */
    size_t len;
    bool waiting; /* a request is in flight */
};

static struct {
    struct event_base *base;
    int port, rounds;
    const char *name;
    struct cconn watch, reg;
    uint64_t index;         /* the index the query parks after */
    int round;              /* 0..rounds-1 */
    int phase;              /* 0 first read, 1 parking, 2 registration sent */
    bool watch_done;        /* this round's parked answer came */
    bool reg_done;          /* this round's registration was answered 200 */
    double t0;              /* the registration's send time */
    double lat[ROUNDS_MAX]; /* ms */
    struct event *tick;     /* owned: the parking poll */
    int failed;
} g;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    fprintf(stderr, "consulwait: round %d: %s\n", g.round + 1, what);
    g.failed = 1;
    event_base_loopbreak(g.base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* A blocking connection to the registry (loopback), or -1. */
static int connect_to(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)g.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* GET /metrics on a connection of its own (blocking, 5 s at most): the
 * watchers gauge into *watchers. 0 or -1. */
static int read_watchers(long *watchers)
{
    static char buf[65536];
    struct timeval tv = {5, 0};
    const char *req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    size_t len = 0;
    ssize_t r;
    char *p;
    int fd = connect_to();

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while (len < sizeof(buf) - 1) {
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    p = strstr(buf, "\nregistry_watchers ");
    if (!p || sscanf(p, "\nregistry_watchers %ld", watchers) != 1)
        return -1;
    return 0;
}

/* Write all of s (a request of a few hundred bytes fits an empty send
 * buffer). 0 or -1. */
static int send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void read_cb(evutil_socket_t fd, short what, void *arg);

/* Open c's connection, non-blocking from then on, with its read event. */
static int open_conn(struct cconn *c)
{
    c->fd = connect_to();
    if (c->fd < 0)
        return -1;
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0)
        return -1;
    c->buf = malloc(BUF_CAP);
    c->ev = event_new(g.base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
    if (!c->buf || !c->ev || event_add(c->ev, NULL) != 0)
        return -1;
    return 0;
}

static void close_conn(struct cconn *c)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

/* Send req on c (its previous answer forgotten). 0 or -1. */
static int send_req(struct cconn *c, const char *req, size_t n)
{
    c->len = 0;
    c->waiting = true;
    return send_all(c->fd, req, n);
}

/* A complete answer in c->buf: its length, with *status, *index
 * (X-Consul-Index, 0 when absent) and *body (in c->buf) set; 0 when more
 * is needed; -1 when it cannot be read (no Content-Length, too big). */
static long answer(struct cconn *c, int *status, uint64_t *index, const char **body)
{
    char *end, *p;
    long clen = -1;
    size_t head;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len >= BUF_CAP - 1 ? -1 : 0;
    *status = 0;
    *index = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
        return -1;
    for (p = strstr(c->buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = strtol(p + 17, NULL, 10);
        if (strncasecmp(p + 2, "X-Consul-Index:", 15) == 0)
            *index = strtoull(p + 17, NULL, 10);
    }
    head = (size_t)(end + 4 - c->buf);
    if (clen < 0 || head + (size_t)clen >= BUF_CAP)
        return -1;
    if (head + (size_t)clen > c->len)
        return 0;
    *body = end + 4;
    return (long)(head + (size_t)clen);
}

static void arm_tick(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_add(g.tick, &tv);
}

/* Park the round's blocking query after g.index. */
static void park(void)
{
    char req[512];
    int n;

    if (g.round % 2 == 0)
        n = snprintf(req, sizeof(req),
                     "GET /v1/catalog/service/%s?index=%" PRIu64
                     "&wait=5m HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     g.name, g.index);
    else
        n = snprintf(req, sizeof(req),
                     "GET /v1/health/service/%s?passing&index=%" PRIu64
                     "&wait=5m HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     g.name, g.index);
    g.watch_done = g.reg_done = false;
    g.phase = 1;
    if (send_req(&g.watch, req, (size_t)n) != 0) {
        fail("cannot send the blocking query");
        return;
    }
    arm_tick(PARK_POLL_MS);
}

/* The query is parked: send the round's registration, stamped. */
static void trigger(void)
{
    char body[256], req[512];
    int blen, n;

    blen = snprintf(body, sizeof(body),
                    "{\"Name\":\"%s\",\"ID\":\"%s-wait-%d\",\"Address\":\"127.0.0.1\","
                    "\"Port\":%d}",
                    g.name, g.name, g.round + 1, 30000 + g.round);
    n = snprintf(req, sizeof(req),
                 "PUT /v1/agent/service/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                 blen, body);
    g.phase = 2;
    g.t0 = now_s();
    if (send_req(&g.reg, req, (size_t)n) != 0)
        fail("cannot send the registration");
}

/* The round is over when both answers came: print it, start the next. */
static void maybe_next(void)
{
    if (!g.watch_done || !g.reg_done)
        return;
    g.round++;
    if (g.round == g.rounds) {
        event_base_loopbreak(g.base);
        return;
    }
    park();
}

/* The parking poll: trigger once the registry counts the query. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    long watchers = 0;

    (void)fd;
    (void)what;
    (void)arg;
    if (g.phase != 1)
        return;
    if (read_watchers(&watchers) != 0) {
        fail("cannot read /metrics");
        return;
    }
    if (watchers >= 1)
        trigger();
    else
        arm_tick(PARK_POLL_MS);
}

/* The parked query's answer (or the first read's). */
static void watch_answer(int status, uint64_t index, const char *body)
{
    char want[256];
    double t = now_s();

    if (status != 200) {
        fail("the query was not answered 200");
        return;
    }
    if (g.phase == 0) {
        if (index == 0) {
            fail("the first read has no X-Consul-Index");
            return;
        }
        g.index = index;
        park();
        return;
    }
    if (g.phase != 2) {
        fail("the blocking query was answered before the change");
        return;
    }
    snprintf(want, sizeof(want), "\"%s-wait-%d\"", g.name, g.round + 1);
    if (index <= g.index || !strstr(body, want)) {
        fail("the blocking query's answer does not have the new instance");
        return;
    }
    g.lat[g.round] = (t - g.t0) * 1e3;
    printf("round=%d query=%s latency_ms=%.3f index=%" PRIu64 "->%" PRIu64 "\n", g.round + 1,
           g.round % 2 == 0 ? "catalog" : "health-passing", g.lat[g.round], g.index, index);
    fflush(stdout);
    g.index = index;
    g.watch_done = true;
    maybe_next();
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cconn *c = arg;
    const char *body = NULL;
    uint64_t index = 0;
    int status = 0;
    ssize_t r;
    long n;

    (void)what;
    r = read(fd, c->buf + c->len, BUF_CAP - 1 - c->len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        fail(c == &g.watch ? "the query's connection closed"
                           : "the registration's connection closed");
        return;
    }
    c->len += (size_t)r;
    if (!c->waiting) {
        fail("bytes with no request in flight");
        return;
    }
    n = answer(c, &status, &index, &body);
    if (n == 0)
        return;
    if (n < 0 || (size_t)n != c->len) {
        fail("an answer that cannot be read (no Content-Length, too big or trailing bytes)");
        return;
    }
    c->waiting = false;
    if (c == &g.watch) {
        watch_answer(status, index, body);
        return;
    }
    if (status != 200) {
        fprintf(stderr, "consulwait: registration answered %d: %.300s\n", status, body);
        fail("the registration was not answered 200");
        return;
    }
    g.reg_done = true;
    maybe_next();
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fail("deadline reached");
}

int main(int argc, char **argv)
{
    struct event *deadline = NULL;
    struct timeval dl;
    char req[512];
    double sorted[ROUNDS_MAX];
    int n, rc = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: consulwait PORT NAME [ROUNDS] [DEADLINE_S]\n");
        return 2;
    }
    g.port = atoi(argv[1]);
    g.name = argv[2];
    g.rounds = argc > 3 ? atoi(argv[3]) : 20;
    dl.tv_sec = argc > 4 ? atoi(argv[4]) : 60;
    dl.tv_usec = 0;
    if (g.port <= 0 || g.rounds <= 0 || g.rounds > ROUNDS_MAX || strlen(g.name) > 128 ||
        strspn(g.name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(g.name)) {
        fprintf(stderr, "consulwait: bad arguments\n");
        return 2;
    }
    g.watch.fd = g.reg.fd = -1;
    g.base = event_base_new();
    if (!g.base)
        return 1;
    g.tick = evtimer_new(g.base, tick_cb, NULL);
    deadline = evtimer_new(g.base, deadline_cb, NULL);
    if (!g.tick || !deadline || event_add(deadline, &dl) != 0 || open_conn(&g.watch) != 0 ||
        open_conn(&g.reg) != 0) {
        fprintf(stderr, "consulwait: cannot connect to 127.0.0.1:%d\n", g.port);
        goto done;
    }
    n = snprintf(req, sizeof(req), "GET /v1/catalog/service/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 g.name);
    if (send_req(&g.watch, req, (size_t)n) != 0) {
        fprintf(stderr, "consulwait: cannot send the first read\n");
        goto done;
    }
    event_base_dispatch(g.base);
    if (g.failed || g.round != g.rounds)
        goto done;
    memcpy(sorted, g.lat, sizeof(double) * (size_t)g.rounds);
    qsort(sorted, (size_t)g.rounds, sizeof(double), cmp_double);
    printf("rounds=%d lat_median_ms=%.3f lat_max_ms=%.3f\n", g.rounds,
           g.rounds % 2 ? sorted[g.rounds / 2]
                        : (sorted[g.rounds / 2 - 1] + sorted[g.rounds / 2]) / 2,
           sorted[g.rounds - 1]);
    rc = 0;
done:
    close_conn(&g.watch);
    close_conn(&g.reg);
    if (g.tick)
        event_free(g.tick);
    if (deadline)
        event_free(deadline);
    event_base_free(g.base);
    return rc;
}

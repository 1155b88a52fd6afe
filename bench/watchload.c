/* watchload.c: the load generator of the registry's watch benchmark
 * (bench/run.sh watch), on libevent.
 *
 * Against a registry on 127.0.0.1 whose pid it is given, it
 *   1. reads the registry's RSS (VmRSS), then opens POLLS long-polls
 *      (GET /v1/events?index=<current>&wait=5m, every other one with
 *      &name=bench-watch) and STREAMS SSE streams (GET /v1/events with
 *      Accept: text/event-stream), paced (BATCH connections every PACE_MS,
 *      so that the accept backlog never overflows);
 *   2. waits until /metrics says registry_watchers = POLLS + STREAMS (every
 *      long-poll parked, every stream open), reads the RSS again, and the
 *      registry's CPU (utime + stime of /proc/PID/stat) over IDLE_S seconds
 *      with them all parked;
 *   3. ROUNDS times: sends one registration (name bench-watch) and stamps,
 *      with CLOCK_MONOTONIC, the moment each long-poll's answer is complete
 *      (200, X-Registry-Index = the new index) and each stream has the
 *      event's frame ("id: <new index>"); the round's latency is from just
 *      before the POST is written to the last of them. Then every long-poll
 *      is sent again (same keep-alive connection, new index; a closed one is
 *      reopened) and parked before the next round.
 * Every wait is bounded: the whole run ends at DEADLINE_S (exit 1).
 *
 * Usage: watchload PORT PID POLLS STREAMS [ROUNDS] [IDLE_S] [DEADLINE_S]
 * Prints one line per round, then one summary line:
 *   rss_before_kb=N rss_parked_kb=N extra_mib=X idle_cpu_pct=X rounds=N
 *   lat_median_ms=X lat_max_ms=X
 * Exit status 0 only when every round completed for every watcher.
 *
 * Built by bench/run.sh:
 *   gcc -O2 -std=c11 -o watchload bench/watchload.c $(pkg-config --libs libevent) */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP      8192 /* bytes of one answer kept (a long-poll's answer is ~1 KB) */
#define BATCH        200  /* connections opened per pacing tick */
#define PACE_MS      20   /* between two pacing ticks */
#define PARK_POLL_MS 50   /* between two reads of /metrics while parking */
#define WATCH_NAME   "bench-watch"

enum kind { K_POLL, K_SSE, K_POST };

struct wconn {
    int fd; /* -1: closed */
    enum kind kind;
    int i;            /* position, for the ?name= mix */
    struct event *ev; /* owned: EV_READ | EV_PERSIST on fd */
    bool done;        /* answered (poll) / frame seen (sse) this round */
    char *buf;        /* owned, BUF_CAP bytes */
    size_t len;
};

static struct {
    struct event_base *base;
    int port, pid, npoll, nsse, rounds, idle_s;
    struct wconn *c;   /* npoll + nsse, polls first */
    struct wconn post; /* the registration of a round */
    int opened;        /* connections opened so far (step 1) */
    int remaining;     /* watchers not yet done this round */
    uint64_t index;    /* the index the long-polls wait after */
    uint64_t target;   /* index + 1: the round's registration */
    char needle[40];   /* "id: <target>\n" */
    int round;
    double t0, *lat; /* lat[round] in ms */
    double *t_done;  /* this round's completions, s after t0, in order */
    double poll_last, sse_last;
    double post_answer; /* s after t0 when the registration's 201 came (0: not yet) */
    long reg_cpu0;      /* the registry's ticks at the trigger */
    double gen_cpu0;    /* our own CPU seconds at the trigger */
    long rss_before, rss_parked;
    double idle_pct;
    long cpu0;
    struct event *tick; /* owned: pacing, parking, idle timers */
    int phase;          /* 0 open, 1 park, 2 idle, 3 round, 4 re-park */
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
    fprintf(stderr, "watchload: %s\n", what);
    g.failed = 1;
    event_base_loopbreak(g.base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* VmRSS of the registry in kB, -1 when unreadable. */
static long rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", g.pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* utime + stime of the registry in clock ticks, -1 when unreadable. */
static long cpu_ticks(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", g.pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
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
 * watchers gauge and the index. 0 or -1. */
static int read_metrics(long *watchers, uint64_t *index)
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
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    p = strstr(buf, "\nregistry_watchers ");
    if (!p || sscanf(p, "\nregistry_watchers %ld", watchers) != 1)
        return -1;
    p = strstr(buf, "\nregistry_index ");
    if (!p || sscanf(p, "\nregistry_index %" SCNu64, index) != 1)
        return -1;
    return 0;
}

static int send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1; /* a request of a few hundred bytes fits an empty send buffer */
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send c's request (a long-poll after g.index, or the stream's GET). */
static int send_watch(struct wconn *c)
{
    char req[512];
    int n;

    if (c->kind == K_POLL)
        n = snprintf(req, sizeof(req),
                     "GET /v1/events?index=%" PRIu64
                     "&wait=5m%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     g.index, c->i % 2 ? "&name=" WATCH_NAME : "");
    else
        n = snprintf(req, sizeof(req),
                     "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Accept: text/event-stream\r\n\r\n");
    c->len = 0;
    c->done = false;
    return send_all(c->fd, req, (size_t)n);
}

static void read_cb(evutil_socket_t fd, short what, void *arg);

/* Open c's connection, non-blocking from then on, with its read event. */
static int open_conn(struct wconn *c)
{
    c->fd = connect_to();
    if (c->fd < 0)
        return -1;
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0)
        return -1;
    if (!c->buf)
        c->buf = malloc(BUF_CAP);
    c->ev = event_new(g.base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
    if (!c->buf || !c->ev || event_add(c->ev, NULL) != 0)
        return -1;
    return 0;
}

static void close_conn(struct wconn *c)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void arm_tick(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_add(g.tick, &tv);
}

/* Our own user + system CPU seconds. */
static double self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One watcher done this round: the last one ends the round, printing the
 * first, median and last completion (ms after the POST), the last long-poll
 * and the last stream, and the CPU the registry and this generator used
 * meanwhile (to tell whose time the latency is). */
static void watcher_done(struct wconn *c)
{
    int total = g.npoll + g.nsse, k = total - g.remaining;
    double t = now_s() - g.t0;
    char post[32];

    c->done = true;
    g.t_done[k] = t;
    if (c->kind == K_POLL)
        g.poll_last = t;
    else
        g.sse_last = t;
    if (--g.remaining > 0)
        return;
    g.lat[g.round] = t * 1e3;
    if (g.post_answer > 0)
        snprintf(post, sizeof(post), "%.3f", g.post_answer * 1e3);
    else
        snprintf(post, sizeof(post), "later"); /* answered after the last watcher */
    printf("round=%d last_of_%d_ms=%.3f first_ms=%.3f median_ms=%.3f polls_last_ms=%.3f "
           "streams_last_ms=%.3f post_201_ms=%s registry_cpu_ms=%.0f watchload_cpu_ms=%.0f\n",
           g.round + 1, total, g.lat[g.round], g.t_done[0] * 1e3, g.t_done[total / 2] * 1e3,
           g.poll_last * 1e3, g.sse_last * 1e3, post,
           1e3 * (double)(cpu_ticks() - g.reg_cpu0) / (double)sysconf(_SC_CLK_TCK),
           1e3 * (self_cpu_s() - g.gen_cpu0));
    fflush(stdout);
    g.round++;
    g.phase = 4;
    arm_tick(0);
}

/* A complete long-poll answer in c->buf: its length, 0 when more is
 * needed, -1 when it is not the expected one. */
static long poll_answer(struct wconn *c)
{
    char *end, *p;
    long clen = -1;
    int status = 0;
    uint64_t idx = 0;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len >= BUF_CAP - 1 ? -1 : 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1 || status != 200)
        return -1;
    for (p = strstr(c->buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = strtol(p + 17, NULL, 10);
        if (strncasecmp(p + 2, "X-Registry-Index:", 17) == 0)
            idx = strtoull(p + 19, NULL, 10);
    }
    if (clen < 0 || idx != g.target)
        return -1;
    if ((size_t)(end + 4 - c->buf) + (size_t)clen > c->len)
        return (size_t)(end + 4 - c->buf) + (size_t)clen >= BUF_CAP ? -1 : 0;
    return (long)(end + 4 - c->buf) + clen;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wconn *c = arg;
    ssize_t r;

    (void)what;
    if (c->len >= BUF_CAP - 1) {
        /* a stream: keep the tail, where a frame may have started */
        memmove(c->buf, c->buf + c->len - 64, 64);
        c->len = 64;
    }
    r = read(fd, c->buf + c->len, BUF_CAP - 1 - c->len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        if (c->kind == K_POLL && c->done) {
            close_conn(c); /* answered, then closed: reopened for the next round */
            return;
        }
        fail(c->kind == K_POST ? "the registration's connection closed"
                               : "a watcher's connection closed before its answer");
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    if (c->kind == K_POST) {
        if (!strstr(c->buf, "\r\n\r\n"))
            return;
        if (strncmp(c->buf, "HTTP/1.1 201", 12) != 0)
            fail("the registration was not answered 201");
        else if (g.post_answer == 0)
            g.post_answer = now_s() - g.t0;
        return;
    }
    if (c->done)
        return; /* heartbeats, or bytes of a stream's earlier frames */
    if (c->kind == K_SSE) {
        if (g.phase == 3 && memmem(c->buf, c->len, g.needle, strlen(g.needle)))
            watcher_done(c);
        return;
    }
    switch (poll_answer(c)) {
    case 0:
        return;
    case -1:
        fail("a long-poll got an unexpected answer");
        return;
    default:
        if (g.phase != 3) {
            fail("a long-poll was answered before the change");
            return;
        }
        watcher_done(c);
    }
}

/* Send the round's registration (a new instance each round). */
static void trigger(void)
{
    char body[256], req[512];
    int blen, n;

    g.target = g.index + 1;
    snprintf(g.needle, sizeof(g.needle), "id: %" PRIu64 "\n", g.target);
    g.remaining = g.npoll + g.nsse;
    for (n = 0; n < g.nsse; n++) {
        g.c[g.npoll + n].len = 0; /* only frames after the trigger count */
        g.c[g.npoll + n].done = false;
    }
    blen = snprintf(body, sizeof(body),
                    "{\"name\":\"" WATCH_NAME "\",\"host\":\"127.0.0.1\",\"port\":%d,\"ttl\":600}",
                    20000 + g.round);
    n = snprintf(req, sizeof(req),
                 "POST /v1/services HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                 blen, body);
    g.post.len = 0;
    g.phase = 3;
    g.poll_last = g.sse_last = g.post_answer = 0;
    g.reg_cpu0 = cpu_ticks();
    g.gen_cpu0 = self_cpu_s();
    g.t0 = now_s();
    if (send_all(g.post.fd, req, (size_t)n) != 0)
        fail("could not send the registration");
}

/* The pacing and parking timer: what comes next in the run. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    long watchers = -1;
    uint64_t idx = 0;
    int i;

    (void)fd;
    (void)what;
    (void)arg;
    switch (g.phase) {
    case 0: /* open the next batch */
        for (i = 0; i < BATCH && g.opened < g.npoll + g.nsse; i++, g.opened++) {
            struct wconn *c = &g.c[g.opened];

            if (open_conn(c) != 0 || send_watch(c) != 0) {
                fail("could not open a watcher's connection");
                return;
            }
        }
        if (g.opened == g.npoll + g.nsse)
            g.phase = 1;
        arm_tick(g.phase == 0 ? PACE_MS : PARK_POLL_MS);
        return;
    case 1:
    case 4: /* parked? */
        if (read_metrics(&watchers, &idx) != 0) {
            fail("could not read /metrics");
            return;
        }
        if (watchers < g.npoll + g.nsse || idx != g.index) {
            if (idx != g.index)
                fail("the registry's index moved while parking");
            else
                arm_tick(PARK_POLL_MS);
            return;
        }
        if (g.phase == 1) {
            g.rss_parked = rss_kb();
            g.cpu0 = cpu_ticks();
            g.phase = 2;
            arm_tick(g.idle_s * 1000);
            return;
        }
        trigger();
        return;
    case 2: /* the idle window is over */
        g.idle_pct = 100.0 * (double)(cpu_ticks() - g.cpu0) / (double)sysconf(_SC_CLK_TCK) /
                     (double)g.idle_s;
        trigger();
        return;
    case 3:
        return;
    }
}

/* After a round: every long-poll again, after the new index; then park. */
static void rearm(void)
{
    int i;

    g.index = g.target;
    for (i = 0; i < g.npoll; i++) {
        struct wconn *c = &g.c[i];

        if (c->fd < 0 && open_conn(c) != 0) {
            fail("could not reopen a long-poll's connection");
            return;
        }
        if (send_watch(c) != 0) {
            fail("could not send a long-poll again");
            return;
        }
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fprintf(stderr, "watchload: deadline reached in phase %d, round %d, %d watchers left\n",
            g.phase, g.round + 1, g.remaining);
    g.failed = 1;
    event_base_loopbreak(g.base);
}

int main(int argc, char **argv)
{
    struct timeval dl;
    struct event *deadline;
    double deadline_s = 120, sorted[64];
    long watchers = -1;
    int i;

    if (argc < 5) {
        fprintf(stderr, "usage: watchload PORT PID POLLS STREAMS [ROUNDS] [IDLE_S] [DEADLINE_S]\n");
        return 2;
    }
    g.port = atoi(argv[1]);
    g.pid = atoi(argv[2]);
    g.npoll = atoi(argv[3]);
    g.nsse = atoi(argv[4]);
    g.rounds = argc > 5 ? atoi(argv[5]) : 5;
    g.idle_s = argc > 6 ? atoi(argv[6]) : 10;
    if (argc > 7)
        deadline_s = atof(argv[7]);
    if (g.port <= 0 || g.pid <= 0 || g.npoll < 0 || g.nsse < 0 || g.npoll + g.nsse == 0 ||
        g.rounds < 1 || g.rounds > 64 || g.idle_s < 1)
        return 2;
    g.base = event_base_new();
    g.c = calloc((size_t)(g.npoll + g.nsse), sizeof(*g.c));
    g.lat = calloc((size_t)g.rounds, sizeof(*g.lat));
    g.t_done = calloc((size_t)(g.npoll + g.nsse), sizeof(*g.t_done));
    g.tick = g.base ? evtimer_new(g.base, tick_cb, NULL) : NULL;
    deadline = g.base ? evtimer_new(g.base, deadline_cb, NULL) : NULL;
    if (!g.c || !g.lat || !g.t_done || !g.tick || !deadline)
        return 2;
    for (i = 0; i < g.npoll + g.nsse; i++) {
        g.c[i].fd = -1;
        g.c[i].i = i;
        g.c[i].kind = i < g.npoll ? K_POLL : K_SSE;
    }
    g.post.fd = -1;
    g.post.kind = K_POST;
    g.rss_before = rss_kb();
    if (g.rss_before < 0 || read_metrics(&watchers, &g.index) != 0) {
        fprintf(stderr, "watchload: no registry pid %d, or no /metrics on port %d\n", g.pid,
                g.port);
        return 2;
    }
    if (g.index == 0) {
        fprintf(stderr, "watchload: the registry's index is 0 (index=0 is not a wait): register "
                        "something first\n");
        return 2;
    }
    if (open_conn(&g.post) != 0)
        return 2;
    dl.tv_sec = (time_t)deadline_s;
    dl.tv_usec = 0;
    event_add(deadline, &dl);
    arm_tick(0);
    /* The loop runs the phases; a round's end (phase 4 armed by
     * watcher_done) re-sends the long-polls here, between loop runs. */
    while (!g.failed && g.round < g.rounds) {
        int before = g.round;

        if (event_base_loop(g.base, EVLOOP_ONCE) == -1)
            break;
        if (g.round != before && g.round < g.rounds)
            rearm();
    }
    if (g.failed || g.round < g.rounds)
        return 1;
    memcpy(sorted, g.lat, (size_t)g.rounds * sizeof(*sorted));
    qsort(sorted, (size_t)g.rounds, sizeof(*sorted), cmp_double);
    printf("rss_before_kb=%ld rss_parked_kb=%ld extra_mib=%.1f idle_cpu_pct=%.2f rounds=%d "
           "lat_median_ms=%.3f lat_max_ms=%.3f\n",
           g.rss_before, g.rss_parked, (double)(g.rss_parked - g.rss_before) / 1024.0, g.idle_pct,
           g.rounds,
           g.rounds % 2 ? sorted[g.rounds / 2]
                        : (sorted[g.rounds / 2 - 1] + sorted[g.rounds / 2]) / 2.0,
           sorted[g.rounds - 1]);
    for (i = 0; i < g.npoll + g.nsse; i++) {
        close_conn(&g.c[i]);
        free(g.c[i].buf);
    }
    close_conn(&g.post);
    free(g.post.buf);
    event_free(g.tick);
    event_free(deadline);
    event_base_free(g.base);
    free(g.c);
    free(g.lat);
    free(g.t_done);
    return 0;
}

/* loadconn.h: the client side the closed-loop load generators of bench/
 * share (regload.c, renewload.c, etcdload.c): keep-alive HTTP/1.1
 * connections to 127.0.0.1 on non-blocking sockets watched by one epoll,
 * one request outstanding on each (no pipelining), a response read whole
 * (status line, headers, a Content-Length body), and the clock and latency
 * percentiles of their output lines.
 *
 * Header-only, so that each generator stays one gcc line in bench/run.sh
 * (gcc -O2 -std=c11 -Wall -Wextra -o X bench/X.c): every function is
 * static inline (no unused-function warning where a generator does not use
 * one). Include it after defining _GNU_SOURCE (the generators do, for
 * memmem and strdup); -std=c11 hides clock_gettime otherwise.
 *
 * What breaks a run outright (a socket that cannot be set up, a short
 * write, a failing epoll) stops the program with exit status 2 and a
 * message on stderr, as the generators always did; what a generator may
 * handle (a closed connection, an answer it cannot parse) is returned.
 *
 * LC_BUF_CAP, the most bytes of one response, may be defined before the
 * include (renewload's answers are small: 8192); default 16384. */
#ifndef BENCH_LOADCONN_H
#define BENCH_LOADCONN_H

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#error "define _GNU_SOURCE before including loadconn.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef LC_BUF_CAP
#define LC_BUF_CAP 16384
#endif

/* One keep-alive connection; a generator embeds it in its own per
 * connection state. */
struct lc_conn {
    int fd;               /* -1 when closed */
    char buf[LC_BUF_CAP]; /* response bytes received so far (NUL-terminated) */
    size_t len;
};

/* A whole response in a connection's buffer. body borrows from the
 * connection's buf: valid until the next lc_send or lc_read on it. */
struct lc_resp {
    int status;
    const char *body;
    size_t blen;
};

/* What lc_read found. */
enum lc_read_result {
    LC_READ_GARBAGE = -3, /* not an HTTP response, no Content-Length, or larger than LC_BUF_CAP */
    LC_READ_EXTRA = -2,   /* bytes after the response: the server sent more than asked */
    LC_READ_CLOSED = -1,  /* the server closed the connection (or it failed) */
    LC_READ_MORE = 0,     /* no whole response yet: wait for the socket again */
    LC_READ_DONE = 1      /* a whole response, in *resp */
};

/* The monotonic clock in seconds. */
static inline double lc_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* perror(msg), then exit status 2. */
__attribute__((noreturn)) static inline void lc_die(const char *msg)
{
    perror(msg);
    exit(2);
}

/* A new epoll instance; exits on failure. */
static inline int lc_epoll_new(void)
{
    int ep = epoll_create1(0);

    if (ep < 0)
        lc_die("epoll_create1");
    return ep;
}

/* Up to cap events of ep into evs within timeout_ms; 0 when interrupted by
 * a signal; exits on any other failure. */
static inline int lc_epoll_wait(int ep, struct epoll_event *evs, int cap, int timeout_ms)
{
    int nev = epoll_wait(ep, evs, cap, timeout_ms);

    if (nev < 0 && errno != EINTR)
        lc_die("epoll_wait");
    return nev < 0 ? 0 : nev;
}

/* Connect c to 127.0.0.1:port (TCP_NODELAY, non-blocking; the connect
 * itself blocks, on loopback briefly) and watch it for input on ep, its
 * events tagged with tag (data.u32: the generator's index of c). Exits on
 * failure. */
static inline void lc_conn_open(struct lc_conn *c, int ep, int port, uint32_t tag)
{
    struct sockaddr_in sa;
    struct epoll_event ev;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        lc_die("socket");
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        lc_die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        lc_die("fcntl");
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        lc_die("epoll_ctl");
    c->fd = fd;
    c->len = 0;
}

/* Close c (its fd leaves every epoll set with it). NULL-safe; a closed c
 * may be opened again. */
static inline void lc_conn_close(struct lc_conn *c)
{
    if (!c || c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Write the request req[0..len) (borrowed) on c and forget the previous
 * response. One request is in flight at most, so the send buffer is empty
 * and a write of a few KiB completes at once: a short write is a broken
 * run, reported as "PROG: short write (W of N)" with exit status 2. */
static inline void lc_send(struct lc_conn *c, const char *prog, const char *req, size_t len)
{
    ssize_t w = write(c->fd, req, len);

    if (w < 0 || (size_t)w != len) {
        fprintf(stderr, "%s: short write (%zd of %zu)\n", prog, w, len);
        exit(2);
    }
    c->len = 0;
}

/* If c->buf holds a whole response, its total length, with *resp set; 0 if
 * more bytes are needed; -1 on garbage (both servers send Content-Length
 * on these answers: none is garbage here). */
static inline long lc_parse(struct lc_conn *c, struct lc_resp *resp)
{
    char *end, *p;
    long clen = -1;
    size_t head;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len >= LC_BUF_CAP - 1 ? -1 : 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &resp->status) != 1)
        return -1;
    for (p = strstr(c->buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = strtol(p + 17, NULL, 10);
    }
    if (clen < 0)
        return -1;
    head = (size_t)(end + 4 - c->buf);
    if (head + (size_t)clen > c->len)
        return head + (size_t)clen >= LC_BUF_CAP ? -1 : 0;
    resp->body = end + 4;
    resp->blen = (size_t)clen;
    return (long)head + clen;
}

/* Read what c's socket has (after epoll said it is readable) and see
 * whether the response to its request is whole. Returns an lc_read_result;
 * on LC_READ_DONE *resp is set (its body borrowed from c). A read that
 * would block or was interrupted is LC_READ_MORE. */
static inline enum lc_read_result lc_read(struct lc_conn *c, struct lc_resp *resp)
{
    ssize_t got = read(c->fd, c->buf + c->len, LC_BUF_CAP - 1 - c->len);
    long used;

    resp->status = 0;
    resp->body = NULL;
    resp->blen = 0;
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return LC_READ_MORE;
    if (got <= 0)
        return LC_READ_CLOSED;
    c->len += (size_t)got;
    used = lc_parse(c, resp);
    if (used < 0)
        return LC_READ_GARBAGE;
    if (used == 0)
        return LC_READ_MORE;
    if ((size_t)used != c->len)
        return LC_READ_EXTRA;
    return LC_READ_DONE;
}

/* The words of an lc_read failure other than LC_READ_CLOSED (each
 * generator names its own server there), as the generators print them. */
static inline const char *lc_read_text(enum lc_read_result r)
{
    switch (r) {
    case LC_READ_GARBAGE:
        return "unparsable response";
    case LC_READ_EXTRA:
        return "unexpected extra bytes";
    case LC_READ_CLOSED:
        return "connection closed";
    default:
        return "no error";
    }
}

static inline int lc_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sort the latencies v[0..n) (seconds) ascending, for lc_lat_ms. */
static inline void lc_lat_sort(double *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), lc_cmp_double);
}

/* The q-quantile (0 <= q < 1) of the sorted latencies v[0..n) in ms: the
 * element at floor(n * q); 0 when there are none. */
static inline double lc_lat_ms(const double *v, long n, double q)
{
    return n ? v[(size_t)((double)n * q)] * 1e3 : 0.0;
}

#endif

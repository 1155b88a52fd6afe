/* rawclient.h: a raw-socket HTTP client for the server and stream unit
 * tests (prefix rc_), read from the same event loop as the server under
 * test, so one thread runs both. It sends bytes exactly as given and keeps
 * every byte received, so tests can check framing byte for byte. Also a
 * bounded loop runner (rc_run_until) and response parsing helpers.
 * Test code only: included by test_server.c and test_stream.c. */
#ifndef RC_RAWCLIENT_H
#define RC_RAWCLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rc_client {
    int fd;              /* owned, -1 once closed */
    struct event *rd;    /* owned */
    struct evbuffer *in; /* owned: every byte received */
    bool eof;            /* the server closed (or reset) the connection */
    bool reading;        /* rc_pause stops reading */
};

/* A parsed response (pointers into an owned copy). */
struct rc_response {
    int status;
    char *head; /* owned: status line and headers, NUL-terminated */
    char *body; /* owned: body (chunked decoded), NUL-terminated */
    size_t body_len;
    bool chunked;
    bool complete; /* the whole body is there */
};

/* Read callback: append what arrived; note EOF. */
static inline void rc_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct rc_client *c = arg;
    char buf[16384];
    ssize_t n;

    (void)what;
    for (;;) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            evbuffer_add(c->in, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        c->eof = true; /* 0 or an error */
        event_del(c->rd);
        return;
    }
}

/* Connect to 127.0.0.1:port (blocking connect: loopback completes at once
 * from the listen backlog, before the server accepts). NULL on failure. */
static inline struct rc_client *rc_connect(struct event_base *base, int port)
{
    struct rc_client *c = calloc(1, sizeof(*c));
    struct sockaddr_in sa;

    if (!c)
        return NULL;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return NULL;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->in = evbuffer_new();
    c->rd = event_new(base, c->fd, EV_READ | EV_PERSIST, rc_on_read, c);
    event_add(c->rd, NULL);
    c->reading = true;
    return c;
}

/* Shrink the client's receive buffer (before any data arrives) so a client
 * that does not read fills up quickly. */
static inline void rc_small_rcvbuf(struct rc_client *c, int bytes)
{
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* Stop reading: the kernel buffers fill and the server's output backs up. */
static inline void rc_pause(struct rc_client *c)
{
    event_del(c->rd);
    c->reading = false;
}

/* Send s (small: written in a loop, the socket is loopback). 0 or -1. */
static inline int rc_send(struct rc_client *c, const char *s)
{
    size_t len = strlen(s), off = 0;
    ssize_t n;

    while (off < len) {
        n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Close the client's socket at once (the server sees a reset on its next
 * write). The received bytes stay readable. */
static inline void rc_close(struct rc_client *c)
{
    if (c->fd >= 0) {
        event_del(c->rd);
        close(c->fd);
        c->fd = -1;
    }
}

/* Free the client (closing it). Accepts NULL. */
static inline void rc_free(struct rc_client *c)
{
    if (!c)
        return;
    rc_close(c);
    event_free(c->rd);
    evbuffer_free(c->in);
    free(c);
}

/* The received bytes, contiguous (borrowed from c->in; *len set). */
static inline const char *rc_data(struct rc_client *c, size_t *len)
{
    *len = evbuffer_get_length(c->in);
    return *len ? (const char *)evbuffer_pullup(c->in, -1) : "";
}

typedef bool (*rc_pred_fn)(void *arg);

struct rc_wait {
    struct event_base *base;
    rc_pred_fn pred;
    void *arg;
    bool met;
};

/* Poll timer of rc_run_until. */
static inline void rc_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rc_wait *w = arg;

    (void)fd;
    (void)what;
    if (w->pred(w->arg)) {
        w->met = true;
        event_base_loopbreak(w->base);
    }
}

/* Safety timer of rc_run_until. */
static inline void rc_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Run base until pred(arg) holds (checked every 2 ms) or timeout_ms pass.
 * Returns whether pred held. */
static inline bool rc_run_until(struct event_base *base, rc_pred_fn pred, void *arg, int timeout_ms)
{
    struct rc_wait w = {base, pred, arg, false};
    struct timeval poll = {0, 2000};
    struct timeval limit = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct event *p = event_new(base, -1, EV_PERSIST, rc_poll_cb, &w);
    struct event *t = evtimer_new(base, rc_timeout_cb, base);

    if (pred(arg)) {
        w.met = true;
    } else {
        event_add(p, &poll);
        event_add(t, &limit);
        event_base_dispatch(base);
    }
    event_free(p);
    event_free(t);
    return w.met;
}

/* Run base for ms milliseconds. */
static inline void rc_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Predicate: the client saw EOF. */
static inline bool rc_pred_eof(void *arg) { return ((struct rc_client *)arg)->eof; }

static inline void rc_response_free(struct rc_response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Parse the first response in data[0..len). Returns the bytes it takes
 * when complete, 0 when more is needed (r filled as far as it goes), -1
 * when malformed. */
static inline long rc_parse(const char *data, size_t len, int head_only, struct rc_response *r)
{
    const char *end = NULL, *p, *te, *cl;
    size_t i, hlen, pos;

    memset(r, 0, sizeof(*r));
    for (i = 0; i + 3 < len; i++) {
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            end = data + i;
            break;
        }
    }
    if (!end)
        return 0;
    hlen = (size_t)(end - data);
    r->head = strndup(data, hlen);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    pos = hlen + 4;
    te = strcasestr(r->head, "\r\nTransfer-Encoding: chunked");
    cl = strcasestr(r->head, "\r\nContent-Length: ");
    r->body = calloc(1, len + 1);
    if (head_only) {
        r->complete = true;
        return (long)pos;
    }
    if (te) {
        r->chunked = true;
        for (;;) {
            unsigned long n;
            char *e;

            p = memmem(data + pos, len - pos, "\r\n", 2);
            if (!p)
                return 0;
            n = strtoul(data + pos, &e, 16);
            pos = (size_t)(p - data) + 2;
            if (n == 0) {
                if (len - pos < 2)
                    return 0;
                r->complete = true;
                return (long)pos + 2;
            }
            if (len - pos < n + 2) {
                memcpy(r->body + r->body_len, data + pos, len - pos);
                r->body_len += len - pos;
                return 0;
            }
            memcpy(r->body + r->body_len, data + pos, n);
            r->body_len += n;
            pos += n + 2;
        }
    }
    if (cl) {
        size_t n = strtoul(cl + 18, NULL, 10);

        if (len - pos < n) {
            memcpy(r->body, data + pos, len - pos);
            r->body_len = len - pos;
            return 0;
        }
        memcpy(r->body, data + pos, n);
        r->body_len = n;
        r->complete = true;
        return (long)(pos + n);
    }
    memcpy(r->body, data + pos, len - pos);
    r->body_len = len - pos;
    r->complete = true;
    return (long)len;
}

/* Predicate: one complete response arrived. */
static inline bool rc_pred_response(void *arg)
{
    struct rc_client *c = arg;
    struct rc_response r;
    size_t len;
    const char *t = rc_data(c, &len);
    long n = rc_parse(t, len, 0, &r);

    rc_response_free(&r);
    return n > 0;
}

/* The header value of name in a response head, copied into out. */
static inline bool rc_header(const struct rc_response *r, const char *name, char *out,
                             size_t outlen)
{
    char key[128];
    const char *p, *e;

    snprintf(key, sizeof(key), "\r\n%s: ", name);
    p = strcasestr(r->head, key);
    if (!p)
        return false;
    p += strlen(key);
    e = strstr(p, "\r\n");
    snprintf(out, outlen, "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
    return true;
}

#endif

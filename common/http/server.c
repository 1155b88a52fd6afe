/* server.c: the evhttp wrapper every service runs. One generic callback
 * receives every request, matches it against the route table (404 for an
 * unknown path, 405 for a known path with another method), enforces the body
 * limit with a JSON 413, and hands a struct hs_req to the route's handler.
 * Replies are counted in the metrics registry with their latency. The route
 * table itself (patterns, matching, "{name}" values) is router.c. Streamed
 * answers (stream.c) take their request off the pending list; the server
 * ends them at shutdown and frees them with itself. */
#include "http/server.h"

#include "core/clock.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/router.h"
#include "http/server_int.h"
#include "http/uri.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* major/minor: 2.1 has no getter for them */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>
#include <utlist.h>

#define HS_QUERY_MAX 16 /* query parameters looked at per request */

/* The output cap of a connection (limits.out_max) is on answer bytes that
 * wait unread, not on the size of an answer: evhttp writes a whole answer
 * into the connection's output buffer at once, and takes the next request
 * only once that buffer is empty, so one answer is all a connection holds.
 * When an answer leaves more than the cap there, a timer looks at the
 * buffer every HS_OUT_STALL_MS: below the cap again, the watch ends; still
 * above it but smaller than at the last look (the client reads), it goes
 * on; above it and not drained at all for a whole interval, the connection
 * is closed and its buffer freed. A client that reads gets any size of
 * answer; one that does not holds the memory for at most this interval
 * (instead of the idle timeout, 30 s). Not a limit of limits.h: it is how
 * often the cap is checked, not a bound a client sees. */
#define HS_OUT_STALL_MS 2000

/* What a route runs; the route table (router.c) gives its index. */
struct hs_handler {
    hs_handler_fn fn;
    void *arg;
};

/* One open connection, from its accept (evhttp's bufferevent callback) to
 * evhttp's close callback. Its one event first runs once right after the
 * accept (the connection exists by then: its evhttp_connection is the
 * bufferevent's callback argument), then is the read deadline. A
 * connection a stream takes over is no longer tracked (stream.c owns its
 * close callback). */
struct hs_conn {
    struct hs_server *srv;
    struct bufferevent *bev;         /* owned by evhttp once returned */
    struct evhttp_connection *evcon; /* NULL until attached */
    struct event *ev;                /* owned: attach, then read deadline */
    struct event *out_ev;            /* owned: the output cap's check */
    size_t out_seen;                 /* output bytes at its last check */
    bool refuse;                     /* over max_conns: answer 503, close */
    struct hs_conn *prev, *next;     /* in srv->conns */
    UT_hash_handle hh;               /* in srv->by_evcon, once attached */
};

struct hs_server {
    struct event_base *base;              /* borrowed */
    struct evhttp *http;                  /* owned */
    struct evhttp_bound_socket *listener; /* owned by http */
    const char *service;                  /* borrowed */
    struct hs_limits limits;
    struct mtr_registry *metrics;               /* borrowed, may be NULL */
    struct hr_table *routes;                    /* owned */
    struct hs_handler handlers[LIM_ROUTES_MAX]; /* by route index */
    size_t inflight;                            /* requests received, not yet answered */
    struct hs_req *pending;    /* those requests (utlist DL), freed with the server */
    struct hs_stream *streams; /* open streamed answers (stream.c's list) */
    size_t streams_ending;     /* of those, writing their last chunk */
    struct hs_conn *conns;     /* open connections (utlist DL), owned */
    struct hs_conn *by_evcon;  /* the attached ones, by evcon (uthash) */
    size_t nconns;
    struct evconnlistener *lev;            /* the listener under s->listener, borrowed */
    struct event *resume;                  /* owned: re-enables accepting after a pause */
    bool paused;                           /* accepting paused: out of file descriptors */
    int spare_fd;                          /* /dev/null, given up to shed a connection */
    unsigned long accept_errors;           /* since the last line about them */
    int64_t accept_logged_ms;              /* when that line was written */
    struct hs_server *prev_srv, *next_srv; /* in hs_servers */
};

/* Every server with a listener: the listener's error callback gets evhttp
 * as its argument, not us. The services are single-threaded. */
static struct hs_server *hs_servers;

static void hs_conn_dispatched(struct hs_server *srv, struct evhttp_request *ev);
static void hs_conn_answered(struct hs_server *srv, struct evhttp_request *ev);
static void hs_conn_out_check(evutil_socket_t fd, short what, void *arg);
static void hs_conn_watch_out(struct hs_conn *conn);
static struct hs_conn *hs_conn_find(struct hs_server *srv, struct evhttp_connection *evcon);
static void hs_conn_forget(struct hs_conn *conn);

struct hs_req {
    struct hs_server *srv;
    struct evhttp_request *ev; /* owned by evhttp; valid until our reply; NULL
                                  once a stream's request is gone */
    const char *route_label;   /* pattern of the matched route, or a fixed label */
    const char *method_label;
    enum hs_method method;
    char *path;              /* owned, decoded path; made on first use */
    struct hr_params params; /* "{name}" values, owned */
    char *query;             /* owned: the query string, decoded in place, lazily */
    const char *qkeys[HS_QUERY_MAX], *qvalues[HS_QUERY_MAX]; /* into query */
    int nquery;
    bool query_parsed;
    int query_nul; /* index of a query pair holding a NUL byte, or -1 */
    char *body;    /* owned, NUL-terminated copy, NULL when empty */
    size_t body_len;
    struct timespec start;
    struct hs_req *prev, *next; /* in srv->pending */
};

/* ---------------------------------------------------------------------- */

static double hs_elapsed(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The standard reason phrase for the statuses the services use. */
const char *hs_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 505:
        return "HTTP Version Not Supported";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static const char *hs_method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    default:
        return "OTHER";
    }
}

static enum hs_method hs_method_bit(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return HS_GET;
    case EVHTTP_REQ_POST:
        return HS_POST;
    case EVHTTP_REQ_PUT:
        return HS_PUT;
    case EVHTTP_REQ_DELETE:
        return HS_DELETE;
    case EVHTTP_REQ_HEAD:
        return HS_HEAD;
    default:
        return 0;
    }
}

/* Frees req and everything it owns; the evhttp request is not touched. */
static void hs_req_free(struct hs_req *req)
{
    if (!req)
        return;
    free(req->query);
    hr_params_clear(&req->params);
    free(req->path);
    free(req->body);
    free(req);
}

/* Sends status with the bytes in buf (which evhttp drains), counts the
 * request and frees req. The single exit of every request. */
static void hs_finish(struct hs_req *req, int status, struct evbuffer *buf)
{
    struct hs_server *srv = req->srv;
    struct hs_conn *conn;
    struct evbuffer *out;

    /* libevent 2.1 writes a HEAD answer's body after its headers, which a
     * keep-alive client then reads as the start of the next answer. */
    if (req->method == HS_HEAD) {
        out = evhttp_request_get_output_buffer(req->ev);
        evbuffer_drain(out, evbuffer_get_length(out));
        if (buf)
            evbuffer_drain(buf, evbuffer_get_length(buf));
    }
    hs_conn_answered(srv, req->ev);
    /* Found before the send: req->ev may be gone after it. evhttp only
     * queues the answer, the connection stays. */
    conn = hs_conn_find(srv, evhttp_request_get_connection(req->ev));
    evhttp_send_reply(req->ev, status, hs_status_reason(status), buf);
    hs_conn_watch_out(conn);
    mtr_observe(srv->metrics, req->method_label, req->route_label, status, hs_elapsed(&req->start));
    srv->inflight--;
    DL_DELETE(srv->pending, req);
    hs_req_free(req);
}

void hs_buffer_free(struct evbuffer *buf)
{
    if (buf)
        evbuffer_free(buf);
}

struct evbuffer *hs_req_output(struct hs_req *req)
{
    return evhttp_request_get_output_buffer(req->ev);
}

void hs_reply_buffer(struct hs_req *req, int status, const char *content_type, struct evbuffer *buf)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req->ev);

    /* application/json is evhttp's default here: no header work for it. */
    if (strcmp(content_type, "application/json") != 0) {
        evhttp_remove_header(headers, "Content-Type");
        evhttp_add_header(headers, "Content-Type", content_type);
    }
    hs_finish(req, status, buf);
}

int hs_reply_header(struct hs_req *req, const char *name, const char *value)
{
    struct evkeyvalq *headers = NULL;

    if (!req->ev || strpbrk(value, "\r\n"))
        return -1;
    headers = evhttp_request_get_output_headers(req->ev);
    evhttp_remove_header(headers, name);
    return evhttp_add_header(headers, name, value);
}

void hs_reply_raw(struct hs_req *req, int status, const char *content_type, const char *data,
                  size_t len)
{
    if (len)
        evbuffer_add(hs_req_output(req), data, len);
    hs_reply_buffer(req, status, content_type, NULL);
}

/* Frees the jansson dump once evhttp has written it. */
static void hs_free_dump(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

void hs_reply_json(struct hs_req *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (!text ||
        evbuffer_add_reference(hs_req_output(req), text, strlen(text), hs_free_dump, NULL) != 0) {
        free(text);
        hs_reply_oom(req);
        return;
    }
    hs_reply_buffer(req, status, "application/json", NULL);
}

void hs_reply_oom(struct hs_req *req)
{
    static const char body[] = "{\"success\":false,\"error\":\"out of memory\"}";
    struct evbuffer *out = hs_req_output(req);

    evbuffer_drain(out, evbuffer_get_length(out));
    if (req->ev)
        evhttp_add_header(evhttp_request_get_output_headers(req->ev), "Retry-After", "1");
    hs_reply_raw(req, HS_OOM_STATUS, "application/json", body, sizeof(body) - 1);
}

void hs_reply_error(struct hs_req *req, int status, const char *fmt, ...)
{
    char msg[LIM_ERROR_ECHO_MAX + 4];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* invalid UTF-8 made jansson refuse the message ("out of memory") */
    hu_echo_scrub(msg, LIM_ERROR_ECHO_MAX);
    hs_reply_json(req, status, json_pack("{s:b, s:s}", "success", 0, "error", msg));
}

/* ---------------------------------------------------------------------- */

const char *hs_req_path(const struct hs_req *req)
{
    struct hs_req *mut = (struct hs_req *)req; /* lazy decode is invisible */
    const char *raw;

    if (!mut->path) {
        raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req->ev));
        mut->path = evhttp_uridecode(raw && *raw ? raw : "/", 0, NULL);
    }
    return mut->path ? mut->path : "/";
}
enum hs_method hs_req_method(const struct hs_req *req) { return req->method; }

const char *hs_req_param(const struct hs_req *req, const char *name)
{
    return hr_param(&req->params, name);
}

/* Split the query string once into decoded key/value pairs, all in one
 * allocation: a lookup costs no allocation per parameter. */
static void hs_query_parse(struct hs_req *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req->ev));
    int n, bad = -1;

    req->query_parsed = true;
    if (!q || !*q)
        return;
    req->query = strdup(q);
    if (!req->query)
        return;
    n = hu_query_split(req->query, req->qkeys, req->qvalues, HS_QUERY_MAX, &bad);
    if (n < 0) {
        req->query_nul = bad;
        n = bad + 1; /* the bad pair stays, cut at its NUL, to be named */
    }
    req->nquery = n;
}

const char *hs_req_query(const struct hs_req *req, const char *key)
{
    struct hs_req *mut = (struct hs_req *)req; /* lazy parse is invisible */
    int i;

    if (!mut->query_parsed)
        hs_query_parse(mut);
    for (i = 0; i < mut->nquery; i++)
        if (strcmp(mut->qkeys[i], key) == 0)
            return mut->qvalues[i];
    return NULL;
}

const char *hs_req_header(const struct hs_req *req, const char *name)
{
    if (!req->ev)
        return NULL; /* a stream whose client left */
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

int hs_req_fd(const struct hs_req *req)
{
    struct evhttp_connection *evcon = req->ev ? evhttp_request_get_connection(req->ev) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

    return bev ? (int)bufferevent_getfd(bev) : -1;
}

const char *hs_req_body(const struct hs_req *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

json_t *hs_req_json(const struct hs_req *req, json_error_t *jerr)
{
    return json_loadb(hs_req_body(req, NULL), req->body_len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, jerr);
}

/* --- for stream.c (server_int.h) ---------------------------------------- */

struct evhttp_request *hs_req_evreq(struct hs_req *req) { return req->ev; }
struct hs_server *hs_req_server(struct hs_req *req) { return req->srv; }
struct event_base *hs_server_base(struct hs_server *s) { return s->base; }
struct hs_stream **hs_server_streams(struct hs_server *s) { return &s->streams; }

void hs_server_count_ending(struct hs_server *s, int delta)
{
    if (delta < 0)
        s->streams_ending -= (size_t)-delta;
    else
        s->streams_ending += (size_t)delta;
}

void hs_req_unpend(struct hs_req *req)
{
    struct hs_conn *conn = hs_conn_find(req->srv, evhttp_request_get_connection(req->ev));

    /* stream.c sets its own close callback on the connection now */
    if (conn) {
        evhttp_connection_set_closecb(conn->evcon, NULL, NULL);
        hs_conn_forget(conn);
    }
    (void)hs_req_path(req);
    (void)hs_req_query(req, "");
    req->srv->inflight--;
    DL_DELETE(req->srv->pending, req);
}

void hs_req_forget(struct hs_req *req) { req->ev = NULL; }

void hs_req_finish_stream(struct hs_req *req, int status)
{
    struct hs_server *srv = req->srv;

    mtr_observe(srv->metrics, req->method_label, req->route_label, status, hs_elapsed(&req->start));
    hs_req_free(req);
}

/* --- connections: count, cap, read deadline ------------------------------ */

/* Forget conn (borrowed, freed here): off the lists, its event freed, the
 * count lowered. The connection itself is evhttp's. */
static void hs_conn_forget(struct hs_conn *conn)
{
    struct hs_server *srv = conn->srv;

    if (conn->evcon)
        HASH_DEL(srv->by_evcon, conn);
    DL_DELETE(srv->conns, conn);
    srv->nconns--;
    if (conn->ev)
        event_free(conn->ev);
    if (conn->out_ev)
        event_free(conn->out_ev);
    free(conn);
}

/* The tracked connection behind evcon, or NULL. */
static struct hs_conn *hs_conn_find(struct hs_server *srv, struct evhttp_connection *evcon)
{
    struct hs_conn *conn = NULL;

    if (evcon)
        HASH_FIND_PTR(srv->by_evcon, &evcon, conn);
    return conn;
}

/* Re-enable accepting after a pause for lack of file descriptors. */
static void hs_accept_resume(struct hs_server *srv)
{
    if (!srv->paused)
        return;
    srv->paused = false;
    if (srv->resume)
        event_del(srv->resume);
    if (srv->lev)
        evconnlistener_enable(srv->lev);
}

/* evhttp's close callback of a tracked connection: forget it; a file
 * descriptor is free again, so a paused listener may accept. */
static void hs_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct hs_conn *conn = arg;
    struct hs_server *srv = conn->srv;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    hs_conn_forget(conn);
    hs_accept_resume(srv);
}

/* Answer a connection over the cap 503 (best effort: one non-blocking
 * send of a small answer), before it is closed. */
static void hs_conn_refuse(struct hs_conn *conn)
{
    static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Retry-After: 1\r\nConnection: close\r\n"
                                 "Content-Length: 48\r\n\r\n"
                                 "{\"success\":false,\"error\":\"too many connections\"}";
    evutil_socket_t fd = bufferevent_getfd(conn->bev);
    ssize_t n;

    if (fd >= 0) {
        n = send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n; /* a client that cannot take 200 bytes just sees the close */
    }
}

/* The connection's event: first the attach right after the accept, then
 * the read deadline (the connection is closed). */
static void hs_conn_event(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *conn = arg;
    struct hs_server *srv = conn->srv;
    bufferevent_data_cb readcb = NULL;
    void *cbarg = NULL;

    (void)fd;
    (void)what;
    if (conn->evcon) {
        log_info("closing a connection that sent no complete request within %d s",
                 srv->limits.read_timeout_s);
        evhttp_connection_free(conn->evcon); /* runs hs_conn_closed */
        return;
    }
    /* evhttp made its connection on our bufferevent and set itself as the
     * callback argument. No callback: it failed (out of memory) and freed
     * it; forget the record. */
    bufferevent_getcb(conn->bev, &readcb, NULL, NULL, &cbarg);
    if (!readcb || !cbarg) {
        hs_conn_forget(conn);
        return;
    }
    conn->evcon = cbarg;
    HASH_ADD_PTR(srv->by_evcon, evcon, conn);
    evhttp_connection_set_closecb(conn->evcon, hs_conn_closed, conn);
    if (conn->refuse) {
        hs_conn_refuse(conn);
        evhttp_connection_free(conn->evcon); /* runs hs_conn_closed */
        return;
    }
    if (clk_timer_in(conn->ev, (int64_t)srv->limits.read_timeout_s * 1000) != 0)
        log_warn("cannot arm a connection's read deadline");
}

/* Bytes waiting in conn's output buffer (not yet taken by the kernel). */
static size_t hs_conn_out_len(const struct hs_conn *conn)
{
    return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

/* The output cap's check (see HS_OUT_STALL_MS): end the watch below the
 * cap, go on while the buffer drains, close the connection (hs_conn_closed
 * frees conn and this event) when it did not drain for a whole interval. */
static void hs_conn_out_check(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *conn = arg;
    size_t len = hs_conn_out_len(conn);

    (void)fd;
    (void)what;
    if (len <= conn->srv->limits.out_max || !conn->evcon)
        return;
    if (len < conn->out_seen) {
        conn->out_seen = len;
        if (clk_timer_in(conn->out_ev, HS_OUT_STALL_MS) != 0)
            log_warn("cannot arm a connection's output check");
        return;
    }
    log_info("closing a connection that left %zu answer bytes unread for %d ms (cap %zu)", len,
             HS_OUT_STALL_MS, conn->srv->limits.out_max);
    evhttp_connection_free(conn->evcon); /* runs hs_conn_closed */
}

/* An answer was just queued on conn (may be NULL: not tracked): watch its
 * output while it holds more than the cap. */
static void hs_conn_watch_out(struct hs_conn *conn)
{
    size_t len;

    if (!conn || evtimer_pending(conn->out_ev, NULL))
        return;
    len = hs_conn_out_len(conn);
    if (len <= conn->srv->limits.out_max)
        return;
    conn->out_seen = len;
    if (clk_timer_in(conn->out_ev, HS_OUT_STALL_MS) != 0)
        log_warn("cannot arm a connection's output check");
}

/* evhttp's bufferevent callback, run for each accepted connection before
 * evhttp builds it: make the bufferevent (no fd yet, evhttp sets it) and a
 * record that counts the connection. Returns the bufferevent (evhttp owns
 * it), or NULL to let evhttp make one itself (then it is not tracked). */
static struct bufferevent *hs_conn_new(struct event_base *base, void *arg)
{
    struct hs_server *srv = arg;
    struct hs_conn *conn = calloc(1, sizeof(*conn));

    if (!conn)
        return NULL;
    conn->srv = srv;
    conn->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    conn->ev = event_new(base, -1, 0, hs_conn_event, conn);
    conn->out_ev = evtimer_new(base, hs_conn_out_check, conn);
    if (!conn->bev || !conn->ev || !conn->out_ev) {
        if (conn->bev)
            bufferevent_free(conn->bev);
        if (conn->ev)
            event_free(conn->ev);
        if (conn->out_ev)
            event_free(conn->out_ev);
        free(conn);
        return NULL;
    }
    DL_APPEND(srv->conns, conn);
    srv->nconns++;
    conn->refuse = srv->nconns > srv->limits.max_conns;
    if (conn->refuse) {
        srv->accept_errors++;
        if (clk_now_ms() - srv->accept_logged_ms >= LIM_ACCEPT_LOG_MS) {
            log_warn("%zu connections open, the most allowed; refusing new ones with 503 "
                     "(%lu refused since the last line)",
                     srv->limits.max_conns, srv->accept_errors);
            srv->accept_errors = 0;
            srv->accept_logged_ms = clk_now_ms();
        }
    }
    /* After the accept callback returns: the connection exists then. */
    event_active(conn->ev, EV_TIMEOUT, 0);
    return conn->bev;
}

/* A request of conn arrived whole: no read deadline while it is served. */
static void hs_conn_dispatched(struct hs_server *srv, struct evhttp_request *ev)
{
    struct hs_conn *conn = hs_conn_find(srv, evhttp_request_get_connection(ev));

    if (conn)
        event_del(conn->ev);
}

/* conn's request is answered: the next request must arrive within the idle
 * timeout plus the read deadline (a keep-alive slowloris is bounded too). */
static void hs_conn_answered(struct hs_server *srv, struct evhttp_request *ev)
{
    struct hs_conn *conn = hs_conn_find(srv, evhttp_request_get_connection(ev));
    int64_t ms = ((int64_t)srv->limits.timeout_s + srv->limits.read_timeout_s) * 1000;

    if (conn && clk_timer_in(conn->ev, ms) != 0)
        log_warn("cannot arm a connection's read deadline");
}

/* The server behind listener lev, or NULL. */
static struct hs_server *hs_server_of(struct evconnlistener *lev)
{
    struct hs_server *srv;

    for (srv = hs_servers; srv; srv = srv->next_srv)
        if (srv->lev == lev)
            return srv;
    return NULL;
}

/* The listener's error callback: accept failed with something else than
 * EAGAIN/EINTR/ECONNABORTED, EMFILE or ENFILE above all. libevent would
 * retry at once, forever (100% CPU and a log line each time). Shed one
 * waiting connection with the spare descriptor, pause accepting for
 * LIM_ACCEPT_PAUSE_MS (or until a connection closes), and say so at most
 * once per LIM_ACCEPT_LOG_MS with a count. */
static void hs_accept_error(struct evconnlistener *lev, void *arg)
{
    struct hs_server *srv = hs_server_of(lev);
    int err = EVUTIL_SOCKET_ERROR();
    int64_t now = clk_now_ms();
    int fd;

    (void)arg; /* evhttp */
    if (!srv)
        return;
    srv->accept_errors++;
    if ((err == EMFILE || err == ENFILE) && srv->spare_fd >= 0) {
        close(srv->spare_fd);
        fd = accept(evconnlistener_get_fd(lev), NULL, NULL);
        if (fd >= 0)
            close(fd);
        srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (now - srv->accept_logged_ms >= LIM_ACCEPT_LOG_MS) {
        log_warn("accept failed: %s (%lu times since the last line); pausing accepts for %d ms, "
                 "%zu connections open",
                 strerror(err), srv->accept_errors, LIM_ACCEPT_PAUSE_MS, srv->nconns);
        srv->accept_errors = 0;
        srv->accept_logged_ms = now;
    }
    if (!srv->paused) {
        srv->paused = true;
        evconnlistener_disable(lev);
        if (clk_timer_in(srv->resume, LIM_ACCEPT_PAUSE_MS) != 0)
            hs_accept_resume(srv); /* no timer: do not stay paused */
    }
}

/* The pause timer. */
static void hs_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hs_accept_resume(arg);
}

/* libevent's own log lines (event_warn and the like) into ours, at most
 * LIM_LIBEVENT_LOG_MAX a second; the count of those dropped is said. */
static void hs_libevent_log(int severity, const char *msg)
{
    static int64_t window_ms;
    static unsigned long lines, dropped;
    int64_t now = clk_now_ms();

    if (now - window_ms >= 1000) {
        if (dropped)
            log_warn("libevent: %lu more lines dropped", dropped);
        window_ms = now;
        lines = 0;
        dropped = 0;
    }
    if (++lines > LIM_LIBEVENT_LOG_MAX) {
        dropped++;
        return;
    }
    if (severity >= EVENT_LOG_ERR)
        log_error("libevent: %s", msg);
    else if (severity == EVENT_LOG_WARN)
        log_warn("libevent: %s", msg);
    else
        log_debug("libevent: %s", msg);
}

/* The connections RLIMIT_NOFILE leaves room for: the limit less room for
 * the service's own files and outgoing calls (a quarter of the limit, at
 * most 256); SIZE_MAX when there is no limit. */
static size_t hs_fd_room(void)
{
    struct rlimit rl;
    size_t room, reserve;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    reserve = (size_t)rl.rlim_cur / 4 > 256 ? 256 : (size_t)rl.rlim_cur / 4;
    room = (size_t)rl.rlim_cur - reserve;
    return room < 1 ? 1 : room;
}

/* The default cap on connections: LIM_CONNECTIONS_MAX, or fewer when
 * RLIMIT_NOFILE leaves room for fewer. */
static size_t hs_default_max_conns(void)
{
    size_t room = hs_fd_room();

    return room < LIM_CONNECTIONS_MAX ? room : LIM_CONNECTIONS_MAX;
}

void hs_set_max_conns(struct hs_server *s, size_t n)
{
    size_t room = hs_fd_room();

    if (n == 0) {
        s->limits.max_conns = hs_default_max_conns();
        return;
    }
    if (n > room) {
        log_warn("--max-connections %zu is more than the file descriptor limit leaves room for; "
                 "using %zu (raise RLIMIT_NOFILE, ulimit -n, for more)",
                 n, room);
        n = room;
    }
    s->limits.max_conns = n;
}

/* ---------------------------------------------------------------------- */

/* Copies the request body into req, or answers 413 and returns -1. */
static int hs_take_body(struct hs_req *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
    size_t len = evbuffer_get_length(in);

    if (len > req->srv->limits.body_max) {
        hs_reply_error(req, 413, "request body of %zu bytes is over the limit of %zu bytes", len,
                       req->srv->limits.body_max);
        return -1;
    }
    if (len == 0)
        return 0;
    req->body = malloc(len + 1);
    if (!req->body) {
        hs_reply_oom(req);
        return -1;
    }
    evbuffer_remove(in, req->body, len);
    req->body[len] = '\0';
    req->body_len = len;
    return 0;
}

/* Framing evhttp 2.1 accepts and should not: another version than
 * HTTP/1.x (505), HTTP/1.1 without Host, more than one Content-Length,
 * a Transfer-Encoding other than plain "chunked", or one with a
 * Content-Length (400: a request smuggled after the body would otherwise
 * run next). Answers and returns -1 with the connection set to close;
 * 0 when the request is well framed. */
static int hs_check_framing(struct hs_req *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req->ev);
    struct evkeyval *h;
    int ncl = 0, nte = 0, bad_te = 0;
    const char *why = NULL;
    int major = req->ev->major, minor = req->ev->minor;

    for (h = in->tqh_first; h; h = h->next.tqe_next) {
        if (evutil_ascii_strcasecmp(h->key, "Content-Length") == 0)
            ncl++;
        if (evutil_ascii_strcasecmp(h->key, "Transfer-Encoding") == 0) {
            nte++;
            if (evutil_ascii_strcasecmp(h->value, "chunked") != 0)
                bad_te = 1;
        }
    }
    if (major != 1 || minor < 0 || minor > 1)
        why = "";
    else if (minor == 1 && !evhttp_find_header(in, "Host"))
        why = "HTTP/1.1 request without a Host header";
    else if (ncl > 1)
        why = "more than one Content-Length header";
    else if (nte > 1 || bad_te)
        why = "unsupported Transfer-Encoding (only chunked is accepted)";
    else if (nte && ncl)
        why = "Content-Length together with Transfer-Encoding";
    if (!why)
        return 0;
    evhttp_add_header(evhttp_request_get_output_headers(req->ev), "Connection", "close");
    if (!*why) {
        /* evhttp writes the request's version in the status line */
        req->ev->major = 1;
        req->ev->minor = 1;
        hs_reply_error(req, 505, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
    } else
        hs_reply_error(req, 400, "%s", why);
    return -1;
}

/* A query key or value that decodes to a NUL byte (%00) gets 400: a
 * handler would see it cut there (and echo it cut). Parses the query now;
 * answers and returns -1, or 0 when the query is clean. */
static int hs_refuse_nul_query(struct hs_req *req)
{
    (void)hs_req_query(req, "");
    if (req->query_nul < 0)
        return 0;
    hs_reply_error(req, 400, "query parameter %s holds a NUL byte (%%00)",
                   req->qkeys[req->query_nul]);
    return -1;
}

/* evhttp's generic callback: every request enters here. */
static void hs_dispatch(struct evhttp_request *ev, void *arg)
{
    struct hs_server *srv = arg;
    struct hs_req *req = calloc(1, sizeof(*req));
    const char *raw_path;
    unsigned allowed = 0;
    int route = -1;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(ev);

    if (!req) {
        evhttp_send_error(ev, HS_OOM_STATUS, "out of memory");
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    req->srv = srv;
    req->ev = ev;
    req->method = hs_method_bit(cmd);
    req->method_label = hs_method_name(cmd);
    req->route_label = "unmatched";
    req->query_nul = -1;
    srv->inflight++;
    DL_APPEND(srv->pending, req);
    hs_conn_dispatched(srv, ev);
    if (hs_check_framing(req) != 0)
        return;

    raw_path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(ev));
    if (!raw_path || !*raw_path)
        raw_path = "/";
    switch (hr_lookup(srv->routes, raw_path, req->method, &route, &allowed, &req->params)) {
    case HR_FOUND:
        req->route_label = hr_pattern(srv->routes, route);
        if (hs_refuse_nul_query(req) == 0 && hs_take_body(req) == 0)
            srv->handlers[route].fn(req, srv->handlers[route].arg);
        return;
    case HR_NOT_ALLOWED:
        hs_reply_error(req, 405, "method %s not allowed on %s", req->method_label,
                       hs_req_path(req));
        return;
    case HR_BAD_PATH:
        hs_reply_error(req, 400, "malformed path %s", hs_req_path(req));
        return;
    case HR_NUL_PARAM:
        /* the last value is the bad one; a NUL would cut every echo of it */
        req->route_label = hr_pattern(srv->routes, route);
        hs_reply_error(req, 400, "path parameter %.*s holds a NUL byte (%%00)",
                       (int)strlen(req->params.names[req->params.n - 1]) - 2,
                       req->params.names[req->params.n - 1] + 1);
        return;
    case HR_NO_MEMORY:
        hs_reply_oom(req);
        return;
    case HR_NOT_FOUND:
        break;
    }
    hs_reply_error(req, 404, "no route for %s", hs_req_path(req));
}

/* Built-in GET /health. */
static void hs_health(struct hs_req *req, void *arg)
{
    (void)arg;
    hs_reply_json(req, 200,
                  json_pack("{s:b, s:s, s:I}", "success", 1, "status", "ok", "timestamp",
                            (json_int_t)time(NULL)));
}

/* Built-in GET /metrics. */
static void hs_metrics(struct hs_req *req, void *arg)
{
    struct hs_server *srv = arg;
    struct evbuffer *buf = evbuffer_new();

    if (!buf || !srv->metrics || mtr_render(srv->metrics, buf) != 0) {
        hs_buffer_free(buf);
        hs_reply_error(req, 500, "metrics unavailable");
        return;
    }
    hs_reply_buffer(req, 200, "text/plain; version=0.0.4", buf);
    hs_buffer_free(buf);
}

/* ---------------------------------------------------------------------- */

struct hs_server *hs_server_new(struct event_base *base, const char *service,
                                const struct hs_limits *limits, struct mtr_registry *metrics)
{
    struct hs_server *srv = calloc(1, sizeof(*srv));

    if (!srv)
        return NULL;
    srv->base = base;
    srv->service = service;
    srv->metrics = metrics;
    srv->limits.body_max = LIM_BODY_MAX;
    srv->limits.headers_max = LIM_HEADERS_MAX;
    srv->limits.timeout_s = LIM_REQUEST_TIMEOUT_S;
    if (limits)
        srv->limits = *limits;
    if (srv->limits.read_timeout_s <= 0)
        srv->limits.read_timeout_s = LIM_REQUEST_READ_S;
    if (srv->limits.max_conns == 0)
        srv->limits.max_conns = hs_default_max_conns();
    if (srv->limits.out_max == 0)
        srv->limits.out_max = LIM_CONN_OUT_MAX;
    srv->spare_fd = -1;
    event_set_log_callback(hs_libevent_log);
    srv->http = evhttp_new(base);
    srv->resume = evtimer_new(base, hs_accept_resume_cb, srv);
    if (!srv->resume)
        goto fail;
    srv->routes = hr_new();
    if (!srv->http || !srv->routes)
        goto fail;
    /* evhttp answers oversize bodies itself (with an HTML page) only past
     * the read ceiling; below it hs_take_body answers a JSON 413. */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)(srv->limits.body_max > LIM_BODY_READ_CEILING
                                                         ? srv->limits.body_max
                                                         : LIM_BODY_READ_CEILING));
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)srv->limits.headers_max);
    evhttp_set_timeout(srv->http, srv->limits.timeout_s);
    evhttp_set_default_content_type(srv->http, "application/json");
    /* Accept every method so unknown ones get our JSON 405, not evhttp's 501. */
    evhttp_set_allowed_methods(
        srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                       EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE);
    evhttp_set_gencb(srv->http, hs_dispatch, srv);
    evhttp_set_bevcb(srv->http, hs_conn_new, srv);
    if (hs_route(srv, HS_GET | HS_HEAD, "/health", hs_health, srv) != 0 ||
        hs_route(srv, HS_GET, "/metrics", hs_metrics, srv) != 0)
        goto fail;
    return srv;
fail:
    hs_server_free(srv);
    return NULL;
}

int hs_route(struct hs_server *s, unsigned methods, const char *pattern, hs_handler_fn fn,
             void *arg)
{
    int i = hr_add(s->routes, methods, pattern);

    if (i < 0)
        return -1;
    s->handlers[i].fn = fn;
    s->handlers[i].arg = arg;
    return 0;
}

/* A listening socket on addr:port (numeric host or name, first address
 * getaddrinfo gives), non-blocking, with SO_REUSEADDR and TCP_NODELAY, and
 * the backlog LIM_LISTEN_BACKLOG (evhttp_bind_socket would say 128; the
 * kernel caps ours at net.core.somaxconn). Returns the fd (caller closes)
 * or -1 with err filled. */
static int hs_listen_socket(const char *addr, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(addr, portstr, &hints, &ai);
    if (rc != 0) {
        errbuf_set(err, errlen, "cannot listen on %s:%d: '%s' is not an address to bind (%s)", addr,
                   port, addr, gai_strerror(rc));
        goto cleanup;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    /* TCP_NODELAY for every accepted socket: Linux copies it from the
     * listening socket to each socket accept() returns, so one call here
     * costs nothing per connection. (libevent 2.1 gives no hook with the
     * fd at accept time: evhttp_set_newreqcb is 2.2, and evhttp_set_bevcb's
     * callback is called before the fd is known.) Without it, a reply
     * written in two pieces (headers, then a body over the socket buffer)
     * waits for the client's delayed ACK. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LIM_LISTEN_BACKLOG) != 0)
        goto fail;
    goto cleanup;
fail:
    errbuf_set(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    fd = -1;
cleanup:
    if (ai)
        freeaddrinfo(ai);
    return fd;
}

int hs_listen(struct hs_server *s, const char *addr, int port, int *bound_port, char *err,
              size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int fd = hs_listen_socket(addr, port, err, errlen);

    if (fd < 0)
        return -1;
    s->listener = evhttp_accept_socket_with_handle(s->http, fd);
    if (!s->listener) {
        close(fd);
        errbuf_set(err, errlen, "cannot listen on %s:%d: out of memory", addr, port);
        return -1;
    }
    /* Our error callback instead of libevent's retry-and-warn loop. */
    s->lev = evhttp_bound_socket_get_listener(s->listener);
    evconnlistener_set_error_cb(s->lev, hs_accept_error);
    if (s->spare_fd < 0)
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!s->prev_srv && hs_servers != s)
        DL_APPEND2(hs_servers, s, prev_srv, next_srv);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        errbuf_set(err, errlen, "getsockname failed");
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void hs_stop_accepting(struct hs_server *s)
{
    if (s->listener) {
        evhttp_del_accept_socket(s->http, s->listener);
        s->listener = NULL;
        s->lev = NULL;
    }
    s->paused = false;
    if (s->resume)
        event_del(s->resume);
    hs_streams_shutdown(s->streams);
}

/* See server.h: counts the tracked connections with output pending. */
size_t hs_writing(const struct hs_server *s)
{
    struct hs_conn *conn;
    size_t n = 0;

    DL_FOREACH (s->conns, conn) {
        if (conn->bev && evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0)
            n++;
    }
    return n;
}

size_t hs_inflight(const struct hs_server *s) { return s->inflight + s->streams_ending; }

void hs_server_free(struct hs_server *s)
{
    struct hs_req *req, *tmp;

    if (!s)
        return;
    hs_streams_prepare_free(s->streams);
    DL_FOREACH_SAFE (s->pending, req, tmp) {
        DL_DELETE(s->pending, req);
        /* A request whose client left is detached from its connection:
         * evhttp_free would not free it. */
        if (!evhttp_request_get_connection(req->ev))
            evhttp_request_free(req->ev);
        hs_req_free(req);
    }
    if (s->http)
        evhttp_free(s->http); /* closes every connection: hs_conn_closed */
    while (s->conns)          /* not attached yet: the bufferevents were evhttp's */
        hs_conn_forget(s->conns);
    if (s->prev_srv || hs_servers == s)
        DL_DELETE2(hs_servers, s, prev_srv, next_srv);
    if (s->resume)
        event_free(s->resume);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    hs_streams_free_all(&s->streams);
    hr_free(s->routes);
    free(s);
}

/* server.c: the evhttp wrapper every service runs. One generic callback
 * receives every request, matches it against the route table (404 for an
 * unknown path, 405 for a known path with another method), enforces the body
 * limit with a JSON 413, and hands a struct hs_req to the route's handler.
 * Replies are counted in the metrics registry with their latency. The route
 * table itself (patterns, matching, "{name}" values) is router.c. Streamed
 * answers (stream.c) take their request off the pending list; the server
 * ends them at shutdown and frees them with itself. */
#include "http/server.h"

#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/router.h"
#include "http/server_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <utlist.h>

#define HS_QUERY_MAX 16 /* query parameters looked at per request */

/* What a route runs; the route table (router.c) gives its index. */
struct hs_handler {
    hs_handler_fn fn;
    void *arg;
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
};

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
    char *body; /* owned, NUL-terminated copy, NULL when empty */
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
    struct evbuffer *out;

    /* libevent 2.1 writes a HEAD answer's body after its headers, which a
     * keep-alive client then reads as the start of the next answer. */
    if (req->method == HS_HEAD) {
        out = evhttp_request_get_output_buffer(req->ev);
        evbuffer_drain(out, evbuffer_get_length(out));
        if (buf)
            evbuffer_drain(buf, evbuffer_get_length(buf));
    }
    evhttp_send_reply(req->ev, status, hs_status_reason(status), buf);
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
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
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

/* Value of one hex digit, or -1. */
static int hs_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode a form-encoded query component in place ('+' is a space, %XX a
 * byte; a malformed escape stays as it is). */
static void hs_form_decode(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && hs_hex(s[1]) >= 0 && hs_hex(s[2]) >= 0) {
            *out++ = (char)(hs_hex(s[1]) * 16 + hs_hex(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Split the query string once into decoded key/value pairs, all in one
 * allocation: a lookup costs no allocation per parameter. */
static void hs_query_parse(struct hs_req *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req->ev));
    char *p, *next;

    req->query_parsed = true;
    if (!q || !*q)
        return;
    req->query = strdup(q);
    for (p = req->query; p && req->nquery < HS_QUERY_MAX; p = next) {
        char *eq;

        next = strchr(p, '&');
        if (next)
            *next++ = '\0';
        if (!*p)
            continue;
        eq = strchr(p, '=');
        if (eq)
            *eq++ = '\0';
        hs_form_decode(p);
        if (eq)
            hs_form_decode(eq);
        req->qkeys[req->nquery] = p;
        req->qvalues[req->nquery++] = eq ? eq : "";
    }
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

json_t *hs_req_json(const struct hs_req *req, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;

    if (req->body_len == 0) {
        errbuf_set(err, errlen, "request body is empty; expected JSON");
        return NULL;
    }
    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        errbuf_set(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
    return root;
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
    srv->inflight++;
    DL_APPEND(srv->pending, req);

    raw_path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(ev));
    if (!raw_path || !*raw_path)
        raw_path = "/";
    switch (hr_lookup(srv->routes, raw_path, req->method, &route, &allowed, &req->params)) {
    case HR_FOUND:
        req->route_label = hr_pattern(srv->routes, route);
        if (hs_take_body(req) == 0)
            srv->handlers[route].fn(req, srv->handlers[route].arg);
        return;
    case HR_NOT_ALLOWED:
        hs_reply_error(req, 405, "method %s not allowed on %s", req->method_label,
                       hs_req_path(req));
        return;
    case HR_BAD_PATH:
        hs_reply_error(req, 400, "malformed path %s", hs_req_path(req));
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
    srv->http = evhttp_new(base);
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

int hs_listen(struct hs_server *s, const char *addr, int port, int *bound_port, char *err,
              size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    evutil_socket_t fd;
    int one = 1;

    s->listener = evhttp_bind_socket_with_handle(s->http, addr, (ev_uint16_t)port);
    if (!s->listener) {
        errbuf_set(err, errlen, "cannot listen on %s:%d: %s", addr, port,
                   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    fd = evhttp_bound_socket_get_fd(s->listener);
    /* TCP_NODELAY for every accepted socket: Linux copies it from the
     * listening socket to each socket accept() returns, so one call here
     * costs nothing per connection. (libevent 2.1 gives no hook with the
     * fd at accept time: evhttp_set_newreqcb is 2.2, and evhttp_set_bevcb's
     * callback is called before the fd is known; setting it on the first
     * request of a connection would cost a syscall and a per-connection
     * flag.) Without it, a reply written in two pieces (headers, then a
     * body over the socket buffer) waits for the client's delayed ACK. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        errbuf_set(err, errlen, "cannot set TCP_NODELAY on %s:%d", addr, port);
        return -1;
    }
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
    }
    hs_streams_shutdown(s->streams);
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
        evhttp_free(s->http);
    hs_streams_free_all(&s->streams);
    hr_free(s->routes);
    free(s);
}

/* server.h: the HTTP server every service runs, on libevent's evhttp.
 * A route table (method + path with "{name}" segments), JSON replies, one
 * uniform JSON error body {"success": false, "error": "..."}, explicit
 * limits, GET /health and GET /metrics built in, and request metrics. */
#ifndef SVC_HTTP_SERVER_H
#define SVC_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct hs_server;
struct hs_req;
struct mtr_registry;

/* Method bits for routes. */
enum hs_method {
    HS_GET = 1 << 0,
    HS_POST = 1 << 1,
    HS_PUT = 1 << 2,
    HS_DELETE = 1 << 3,
    HS_HEAD = 1 << 4,
};

/* A handler must end with exactly one hs_reply_* call on req, now or later
 * (from a timer or client callback); req is freed by that call. */
typedef void (*hs_handler_fn)(struct hs_req *req, void *arg);

/* A member left 0 takes its default from core/limits.h. */
struct hs_limits {
    size_t body_max;    /* larger bodies get 413 with a JSON error */
    size_t headers_max; /* larger header blocks are refused by evhttp */
    int timeout_s;      /* idle connection timeout */
    int read_timeout_s; /* a request's line, headers and body must all arrive
                           within this (0: LIM_REQUEST_READ_S) */
    size_t max_conns;   /* open connections; more are answered 503 and closed
                           (0: LIM_CONNECTIONS_MAX, or fewer when RLIMIT_NOFILE
                           is low) */
    size_t out_max;     /* answer bytes a connection may hold unread: above
                           it, a connection whose output does not drain for
                           a check interval is closed (0: LIM_CONN_OUT_MAX) */
};

/* Create a server on base (borrowed), naming service (borrowed) in logs and
 * /health. limits may be NULL for the defaults in core/limits.h. metrics is
 * borrowed and may be NULL. Caller frees with hs_server_free. */
struct hs_server *hs_server_new(struct event_base *base, const char *service,
                                const struct hs_limits *limits, struct mtr_registry *metrics)
    __attribute__((warn_unused_result));

/* Add a route: methods is a mask of enum hs_method, pattern a path such as
 * "/v1/services/{id}/renew" (borrowed, must be a literal or outlive the
 * server). Routes added later override the built-in /health.
 * Returns 0, or -1 when the table is full or the pattern malformed. */
int hs_route(struct hs_server *s, unsigned methods, const char *pattern, hs_handler_fn fn,
             void *arg) __attribute__((warn_unused_result));

/* Cap the open connections at n (0: the default of hs_limits.max_conns).
 * An n above what RLIMIT_NOFILE leaves room for (the limit less a quarter
 * of it, at most 256, for the service's own files and outgoing calls) is
 * lowered to that, with one WARN line. Call before hs_listen. */
void hs_set_max_conns(struct hs_server *s, size_t n);

/* Bind and listen on addr:port (port 0: ephemeral). On success stores the
 * real port in *bound_port and returns 0; on failure fills err, returns -1. */
int hs_listen(struct hs_server *s, const char *addr, int port, int *bound_port, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* Stop accepting new connections (in-flight requests go on) and end every
 * open stream with HS_STREAM_SHUTDOWN (last chunk, then the connection is
 * closed; see stream.h). */
void hs_stop_accepting(struct hs_server *s);
/* Number of requests received and not yet answered, plus streams whose
 * last chunk is still being written. Open streams do not count. */
size_t hs_inflight(const struct hs_server *s);
/* Connections whose answer has not left their output buffer yet. The
 * shutdown drain waits for them too, so that an answer given just before
 * the loop ends is sent before svc_free closes its connection. */
size_t hs_writing(const struct hs_server *s);
/* Free the server; requests not answered yet are dropped, streams still
 * open get their close callback (HS_STREAM_SHUTDOWN). Accepts NULL. */
void hs_server_free(struct hs_server *s);

/* --- request accessors (all returned pointers borrowed from req) --- */
const char *hs_req_path(const struct hs_req *req);
enum hs_method hs_req_method(const struct hs_req *req);
/* Value of path parameter "{name}", or NULL. */
const char *hs_req_param(const struct hs_req *req, const char *name);
/* Value of query parameter key (decoded), or NULL. */
const char *hs_req_query(const struct hs_req *req, const char *key);
/* Value of request header, or NULL (also for a stream whose client left). */
const char *hs_req_header(const struct hs_req *req, const char *name);
/* The socket of the request's connection, or -1 when the client left (for
 * diagnostics and tests: socket options, peer address). */
int hs_req_fd(const struct hs_req *req);
/* The body, NUL-terminated (len excludes the NUL). */
const char *hs_req_body(const struct hs_req *req, size_t *len);
/* Parse the body as JSON (any value; duplicate keys refused). Returns a
 * new reference (caller decrefs), or NULL with jansson's error in *jerr
 * (an empty body too), which a reply states with jerr_describe
 * (codec/jsonerr.h) over hs_req_body: jansson's own text is not for
 * clients. */
json_t *hs_req_json(const struct hs_req *req, json_error_t *jerr)
    __attribute__((warn_unused_result));

/* Set a header of req's answer (replacing one of that name), sent with
 * the reply call (or the start of a stream) that follows. name and value
 * are copied. 0, or -1 when out of
 * memory, the value holds a line break, or the client left. */
int hs_reply_header(struct hs_req *req, const char *name, const char *value);

/* --- replies: exactly one per request; each frees req --- */
/* Reply with body serialised compactly; steals the reference to body. */
void hs_reply_json(struct hs_req *req, int status, json_t *body);
/* Reply {"success": false, "error": <formatted text>}. */
void hs_reply_error(struct hs_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The one answer to an allocation failure, the same in every service:
 * HS_OOM_STATUS with {"success": false, "error": "out of memory"} and
 * Retry-After: 1. Nothing was stored, so the client may send it again (503
 * is what the services' clients already retry). */
#define HS_OOM_STATUS 503
void hs_reply_oom(struct hs_req *req);
/* The request's own reply buffer: a handler may write its body there and
 * answer with hs_reply_buffer(req, status, type, NULL), saving a copy. */
struct evbuffer *hs_req_output(struct hs_req *req);
/* Reply with the bytes in buf, which is drained (stays the caller's), or
 * with what was written to hs_req_output(req) when buf is NULL. */
void hs_reply_buffer(struct hs_req *req, int status, const char *content_type,
                     struct evbuffer *buf);
/* evbuffer_free that accepts NULL (libevent's does not), for the
 * allocation-failure paths of reply building. */
void hs_buffer_free(struct evbuffer *buf);
/* Reply with bytes as they are (copied). */
void hs_reply_raw(struct hs_req *req, int status, const char *content_type, const char *data,
                  size_t len);

#endif

/* client.h: the asynchronous HTTP client every service uses for outgoing
 * calls. One long-lived libcurl multi handle driven by the service's libevent
 * loop (multi-socket API: socket and timer callbacks), keep-alive connections
 * kept in a bounded cache, a per-request timeout, and a completion callback
 * run from the loop (never from inside a libcurl callback). Nothing here
 * blocks the event loop. */
#ifndef SVC_HTTP_CLIENT_H
#define SVC_HTTP_CLIENT_H

#include <stddef.h>

struct event_base;
struct hc_client;
struct hc_call;

#define HC_RESPONSE_MAX       (8 * 1024 * 1024) /* response body kept, bytes */
#define HC_CONNECTIONS_MAX    64                /* keep-alive connection cache */
#define HC_TIMEOUT_DEFAULT_MS 5000
#define HC_HEADER_NAME_MAX    63  /* bytes of hc_request.keep_header */
#define HC_HEADER_VALUE_MAX   255 /* bytes of the value kept (longer is cut) */

enum hc_error {
    HC_OK = 0,   /* an HTTP response arrived (any status) */
    HC_ECONNECT, /* connection refused / host unreachable */
    HC_ETIMEOUT, /* no complete response within the timeout */
    HC_ERESOLVE, /* host name did not resolve */
    HC_ETOOBIG,  /* response body over HC_RESPONSE_MAX */
    HC_EOTHER,   /* any other transport failure */
};

struct hc_response {
    enum hc_error error; /* HC_OK when status is meaningful */
    long status;         /* HTTP status, 0 when error != HC_OK */
    const char *body;    /* NUL-terminated; borrowed, valid during the callback;
                              "" (length 0) when error != HC_OK */
    size_t body_len;
    const char *error_msg; /* human text for error (e.g. "connection refused",
                              "timeout"); "" for HC_OK; never NULL; borrowed */
    double elapsed_ms;     /* from hc_send to completion */
    const char *header;    /* the value of the request's keep_header (trimmed,
                              at most HC_HEADER_VALUE_MAX bytes kept), or NULL
                              when the answer had none; borrowed */
};

/* Called once per request from the event loop, after the transfer is
 * finished and detached from libcurl. May start new requests. */
typedef void (*hc_done_fn)(const struct hc_response *resp, void *arg);

/* A streamed request's data (hc_request.data): the bytes of the answer's
 * body that arrived since the last call, borrowed for the call, handed over
 * from the event loop (never from inside libcurl) in arrival order, before
 * done. arg is the request's. May hc_send, and hc_cancel any call
 * including this one (done then never runs). */
typedef void (*hc_data_fn)(const char *chunk, size_t len, void *arg);

struct hc_request {
    const char *method; /* "GET", "POST", "PUT", "DELETE"; NULL: GET */
    const char *url;
    const char *body; /* copied; NULL for none */
    size_t body_len;
    const char *content_type; /* default "application/json" when body set;
                                 no CR/LF */
    long timeout_ms;          /* whole transfer; <= 0: HC_TIMEOUT_DEFAULT_MS */
    long connect_timeout_ms;  /* TCP connect; <= 0: min(timeout, LIM_CONNECT_DEFAULT_MS) */
    const char *token;        /* sent as X-Registry-Token (the suite's access
                                 token, common/auth/acl.h); NULL or "": none;
                                 no CR/LF */
    const char *keep_header;  /* the name of one response header whose value
                                 the response carries (hc_response.header),
                                 e.g. X-Registry-Index; NULL: none; at most
                                 HC_HEADER_NAME_MAX bytes */
    const char *traceparent;  /* sent as the W3C traceparent header
                                 (http/trace.h formats it); NULL or "": none;
                                 no CR/LF */
    hc_data_fn data;          /* non-NULL: a stream: the body goes to data as
                                 it arrives (done then gets body ""), and
                                 timeout_ms does not apply: no whole-transfer
                                 limit, only idle_ms */
    long idle_ms;             /* a stream only: fail it (HC_ETIMEOUT) when no
                                 byte arrived for this long (whole seconds,
                                 rounded up); <= 0: no idle limit */
};

/* Create a client on base (borrowed; must outlive the client).
 * The first call also runs curl_global_init (not thread-safe: call it before
 * starting threads); curl_global_cleanup is never called.
 * Returns NULL on failure; caller frees with hc_client_free. */
struct hc_client *hc_client_new(struct event_base *base) __attribute__((warn_unused_result));

/* Cancel every request still in flight (their callbacks are not called)
 * and free the client. Accepts NULL. Meant for shutdown, outside callbacks;
 * if called from a done callback, the rest of the teardown is deferred until
 * that callback returns (hc_send on the client then returns NULL). */
void hc_client_free(struct hc_client *c);

/* Start a request; everything in req is copied. done(resp, arg) runs later
 * from the loop, never before hc_send returns (done may be NULL). Returns a
 * handle valid until done returns or hc_cancel is called, or NULL when the
 * request could not be started or req is invalid (done is then never
 * called). */
struct hc_call *hc_send(struct hc_client *c, const struct hc_request *req, hc_done_fn done,
                        void *arg) __attribute__((warn_unused_result));

/* Put the requests sent since the last loop turn on the wire now, instead
 * of from libcurl's timer, which fires only after every other event of the
 * next turn. For a caller that sends a burst at the end of a turn (a
 * batch flush). Done callbacks may run from here (a transfer that fails at
 * once), so call it only where one may run; a no-op inside a done callback
 * or with nothing to start. */
void hc_kick(struct hc_client *c);

/* Abandon a call still in flight: its callback is not called. Accepts
 * NULL; a no-op on the call whose done is running. */
void hc_cancel(struct hc_call *call);

/* Number of calls in flight (for shutdown and tests). */
size_t hc_inflight(const struct hc_client *c);

#endif

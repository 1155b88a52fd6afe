/* stream.h: long-lived and large answers on the HTTP server: a response
 * written in chunks (HTTP/1.1 chunked transfer encoding) as its data comes,
 * optionally framed as Server-Sent Events. A stream learns when its client
 * leaves (close callback), keeps a heartbeat so a silent client that is gone
 * is noticed, and caps the bytes it holds for a client that does not read.
 * Shutdown ends every open stream instead of waiting for it.
 *
 * Life cycle: a handler calls hs_stream_start(req, ...) instead of an
 * hs_reply_* call; from then on the stream owns req. The stream ends with
 * hs_stream_end (the last chunk is sent) or when the client leaves, the
 * output cap is passed or the server shuts down; in every case the close
 * callback runs once, from its own event (never from inside a call on the
 * stream), and the stream is freed after it returns.
 *
 * A client that leaves is noticed only when a write to it fails (evhttp
 * does not read a connection while it writes an answer): SSE streams
 * should have a heartbeat. The request leaves the server's pending list when
 * the stream starts (hs_inflight no longer counts it; it counts again while
 * the last chunk is written) and is counted in the metrics when it ends. On
 * shutdown (hs_stop_accepting) every open stream sends its last chunk, its
 * connection is closed after it, and the close callback says
 * HS_STREAM_SHUTDOWN. For HEAD (or an HTTP/1.0 client) evhttp sends no
 * chunks: nothing of the body is sent (HEAD), or it is sent as is and the
 * connection closed at the end (HTTP/1.0). */
#ifndef SVC_HTTP_STREAM_H
#define SVC_HTTP_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct hs_req;
struct hs_stream;
struct evbuffer;

/* Why a stream ended (argument of the close callback). */
enum hs_stream_end_reason {
    HS_STREAM_ENDED = 0,    /* hs_stream_end was called */
    HS_STREAM_GONE = 1,     /* the client closed or a write failed */
    HS_STREAM_OVERFLOW = 2, /* more than out_max bytes waited for the client */
    HS_STREAM_SHUTDOWN = 3, /* the server is shutting down */
};

/* Called once when the stream ends, for any reason; st is freed right after
 * it returns and must not be used again (nor from a pending timer). */
typedef void (*hs_stream_close_fn)(struct hs_stream *st, enum hs_stream_end_reason why, void *arg);
/* Called when the bytes waiting for the client fell to low_water or below
 * after having been above it: a producer that paused may write again. */
typedef void (*hs_stream_drain_fn)(struct hs_stream *st, void *arg);

struct hs_stream_opts {
    const char *content_type;    /* borrowed; NULL: application/json; ignored with sse */
    int sse;                     /* 1: text/event-stream, heartbeats are SSE comments */
    int64_t heartbeat_ms;        /* 0: none; else ": keep-alive" after this much silence;
                                    SSE only (JSON has no neutral filler) */
    size_t out_max;              /* 0: LIM_STREAM_OUT_MAX; bytes waiting for the client */
    size_t low_water;            /* 0: out_max / 4; see hs_stream_drain_fn */
    hs_stream_close_fn on_close; /* may be NULL */
    hs_stream_drain_fn on_drain; /* may be NULL */
    void *arg;                   /* passed to both callbacks */
};

/* Begin a streamed answer with status (2xx) on req, which the stream now
 * owns (no hs_reply_* call may follow). opts is copied (opts may be NULL).
 * Returns the stream, or NULL when it could not be set up (out of memory,
 * or the client left already); req was then answered with a 500 JSON error
 * and freed. */
struct hs_stream *hs_stream_start(struct hs_req *req, int status, const struct hs_stream_opts *opts)
    __attribute__((warn_unused_result));

/* Send len bytes of data (copied) as one chunk. Returns 0, or -1 when the
 * stream is ending or out of memory. Passing out_max ends the stream with
 * HS_STREAM_OVERFLOW (the close callback runs after the current callback
 * returns, never from inside this call). */
int hs_stream_write(struct hs_stream *st, const void *data, size_t len)
    __attribute__((warn_unused_result));
/* The same with the contents of buf, which is drained on success (and stays
 * the caller's either way). */
int hs_stream_write_buffer(struct hs_stream *st, struct evbuffer *buf)
    __attribute__((warn_unused_result));
/* One Server-Sent Event, as one chunk: "id: ID\nevent: EVENT\ndata: LINE\n...\n",
 * each line of data (broken at CR, LF or CRLF) on its own data: line; empty
 * data is one empty data: line. id and event may be NULL. 0, or -1 as above
 * and also on a stream without sse or an id or event holding a line break
 * (nothing is sent then). */
int hs_stream_event(struct hs_stream *st, const char *id, const char *event, const char *data,
                    size_t len) __attribute__((warn_unused_result));
/* Bytes written to the stream and not yet taken by the client's socket. */
size_t hs_stream_pending(const struct hs_stream *st);
/* The request the stream answers (borrowed). Its path, params and query
 * stay readable until the stream is freed; its headers (hs_req_header) until
 * the client leaves or the answer is written, NULL after. */
struct hs_req *hs_stream_req(struct hs_stream *st);

/* Finish: send the last chunk. The close callback runs with HS_STREAM_ENDED
 * once the answer is written (or soon when it cannot be: the reason stays
 * the one already decided, e.g. HS_STREAM_GONE) and the stream is freed
 * after it. A second call does nothing. */
void hs_stream_end(struct hs_stream *st);

#endif

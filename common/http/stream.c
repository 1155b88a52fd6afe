/* stream.c: streamed answers on the HTTP server (see stream.h), on
 * libevent's evhttp_send_reply_start / _chunk / _end.
 *
 * Who owns what, in libevent 2.1:
 *  - while the stream is open the evhttp request sits on its connection;
 *    when the client leaves (a write fails, a timeout), evhttp detaches the
 *    request (its connection becomes NULL), frees the connection and calls
 *    the connection's close callback: the detached request is then ours to
 *    free. When evhttp itself frees the connection (evhttp_free, or our own
 *    evhttp_connection_free on overflow) the request is freed with it.
 *  - after evhttp_send_reply_end the request is evhttp's: it calls the
 *    request's on-complete callback once the last byte is written and frees
 *    it right after; if the connection fails before, the close callback
 *    runs and the request is freed with the connection.
 * Either way, once the close callback or the on-complete callback ran the
 * stream holds no pointer into libevent's objects any more (ev, evcon and
 * out are NULL), and the user's close callback runs from a deferred event,
 * never from inside hs_stream_write or a libevent callback.
 *
 * Reads are off on a connection while evhttp writes an answer, so a client
 * that leaves is noticed only when a write fails: that is what the SSE
 * heartbeat is for. */
#include "http/stream.h"

#include "core/clock.h"
#include "core/limits.h"
#include "http/server.h"
#include "http/server_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#define HS_SSE_HEARTBEAT ": keep-alive\n\n"
#define HS_CHUNK_FRAMING 12 /* "%x\r\n" and "\r\n" around a chunk, at most */

struct hs_stream {
    struct hs_req *req;               /* owned; freed when the stream is */
    struct hs_server *srv;            /* borrowed */
    struct evhttp_request *ev;        /* evhttp's; NULL once gone */
    struct evhttp_request *orphan;    /* detached by evhttp: ours to free */
    struct evhttp_connection *evcon;  /* evhttp's; NULL once gone */
    struct evbuffer *out;             /* the connection's output; NULL once gone */
    struct evbuffer_cb_entry *out_cb; /* our callback on out */
    struct evbuffer *scratch;         /* owned: one chunk being built */
    struct event *defer;              /* owned: runs drain and close off-stack */
    struct event *heartbeat;          /* owned, NULL without a heartbeat */
    struct hs_stream_opts opts;       /* copy; content_type not kept */
    int status;                       /* of the answer, for the metrics */
    enum hs_stream_end_reason why;    /* valid once has_why */
    bool has_why;                     /* the end reason is decided */
    bool ending;                      /* the last chunk is queued */
    bool abort;                       /* close the connection (overflow) */
    bool above_low;                   /* pending went above low_water */
    bool drain_due;                   /* run on_drain from the deferred event */
    bool freeing;                     /* the server is being freed */
    struct hs_stream *prev, *next;    /* in the server's list */
};

/* Sets the end reason unless one is decided already. */
static void hs_stream_set_why(struct hs_stream *st, enum hs_stream_end_reason why)
{
    if (!st->has_why) {
        st->why = why;
        st->has_why = true;
    }
}

/* Schedules the deferred event (drain or close) for the next loop turn. */
static void hs_stream_schedule(struct hs_stream *st)
{
    if (!st->freeing)
        event_active(st->defer, EV_TIMEOUT, 0);
}

/* Drops every pointer into the connection: our output callback, the
 * heartbeat, and (when the connection lives on) its close callback. */
static void hs_stream_unhook(struct hs_stream *st, bool clear_closecb)
{
    if (st->out && st->out_cb)
        evbuffer_remove_cb_entry(st->out, st->out_cb);
    st->out_cb = NULL;
    st->out = NULL;
    if (clear_closecb && st->evcon)
        evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    st->evcon = NULL;
    if (st->heartbeat)
        event_del(st->heartbeat);
}

/* Runs the close callback, counts the request and frees everything. */
static void hs_stream_finalize(struct hs_stream *st)
{
    hs_stream_set_why(st, HS_STREAM_GONE);
    DL_DELETE(*hs_server_streams(st->srv), st);
    if (st->ending)
        hs_server_count_ending(st->srv, -1);
    if (st->opts.on_close)
        st->opts.on_close(st, st->why, st->opts.arg);
    if (st->orphan)
        evhttp_request_free(st->orphan);
    hs_req_finish_stream(st->req, st->status);
    if (st->heartbeat)
        event_free(st->heartbeat);
    event_free(st->defer);
    evbuffer_free(st->scratch);
    free(st);
}

/* evhttp closes the connection (client gone, timeout, or evhttp_free). */
static void hs_stream_on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct hs_stream *st = arg;

    (void)evcon;
    if (st->ev && !evhttp_request_get_connection(st->ev))
        st->orphan = st->ev; /* detached from the connection: ours now */
    hs_stream_set_why(st, HS_STREAM_GONE);
    hs_stream_unhook(st, false);
    st->ev = NULL;
    hs_req_forget(st->req);
    hs_stream_schedule(st);
}

/* evhttp wrote the last byte after evhttp_send_reply_end; it frees ev
 * right after this returns and may go on using the connection. */
static void hs_stream_on_complete(struct evhttp_request *ev, void *arg)
{
    struct hs_stream *st = arg;

    (void)ev;
    hs_stream_unhook(st, true);
    st->ev = NULL;
    hs_req_forget(st->req);
    hs_stream_schedule(st);
}

/* The deferred event: close the connection after an overflow, run a due
 * drain callback, or end the stream once libevent let go of it. */
static void hs_stream_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct hs_stream *st = arg;
    struct evhttp_connection *evcon;

    (void)fd;
    (void)what;
    if (st->abort && st->evcon) {
        /* evhttp frees the request with the connection (it is still on
         * it); our close callback must not run for it. */
        evcon = st->evcon;
        hs_stream_unhook(st, true);
        st->ev = NULL;
        hs_req_forget(st->req);
        evhttp_connection_free(evcon);
    }
    if (!st->ev) {
        hs_stream_finalize(st);
        return;
    }
    if (st->drain_due) {
        st->drain_due = false;
        if (st->opts.on_drain)
            st->opts.on_drain(st, st->opts.arg);
    }
}

/* Output buffer callback: notice the fall to low_water. */
static void hs_stream_on_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct hs_stream *st = arg;

    if (info->n_deleted == 0 || !st->above_low)
        return;
    if (evbuffer_get_length(buf) <= st->opts.low_water) {
        st->above_low = false;
        if (!st->ending && !st->abort) {
            st->drain_due = true;
            hs_stream_schedule(st);
        }
    }
}

/* Arms the heartbeat for heartbeat_ms of silence from now. */
static void hs_stream_arm_heartbeat(struct hs_stream *st)
{
    if (st->heartbeat)
        (void)clk_timer_in(st->heartbeat, st->opts.heartbeat_ms);
}

/* Whether len more bytes (and the chunk framing) fit under out_max; when
 * they do not, the stream ends with HS_STREAM_OVERFLOW. */
static bool hs_stream_room(struct hs_stream *st, size_t len)
{
    size_t pending = evbuffer_get_length(st->out);

    if (pending + len + HS_CHUNK_FRAMING <= st->opts.out_max)
        return true;
    hs_stream_set_why(st, HS_STREAM_OVERFLOW);
    st->abort = true;
    hs_stream_schedule(st);
    return false;
}

/* Whether writes are allowed now. */
static bool hs_stream_open(const struct hs_stream *st)
{
    return st->ev && st->out && !st->ending && !st->abort;
}

/* Sends the contents of buf (drained) as one chunk; the room is checked. */
static int hs_stream_send(struct hs_stream *st, struct evbuffer *buf)
{
    evhttp_send_reply_chunk(st->ev, buf);
    /* evhttp leaves buf as it was when the answer has no body (HEAD). */
    evbuffer_drain(buf, evbuffer_get_length(buf));
    if (evbuffer_get_length(st->out) > st->opts.low_water)
        st->above_low = true;
    hs_stream_arm_heartbeat(st);
    return 0;
}

/* The heartbeat timer: an SSE comment after heartbeat_ms of silence. A write
 * to a client that left fails, and evhttp then closes the connection. */
static void hs_stream_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    struct hs_stream *st = arg;

    (void)fd;
    (void)what;
    if (!hs_stream_open(st))
        return;
    if (hs_stream_write(st, HS_SSE_HEARTBEAT, sizeof(HS_SSE_HEARTBEAT) - 1) != 0) {
        /* over the cap: the stream is ending with HS_STREAM_OVERFLOW */
    }
}

struct hs_stream *hs_stream_start(struct hs_req *req, int status, const struct hs_stream_opts *opts)
{
    struct hs_stream *st = NULL;
    struct evhttp_request *ev = hs_req_evreq(req);
    struct evhttp_connection *evcon = ev ? evhttp_request_get_connection(ev) : NULL;
    struct event_base *base = hs_server_base(hs_req_server(req));
    struct evkeyvalq *headers;
    const char *type;

    if (!evcon)
        goto fail; /* the client left before the answer began */
    st = calloc(1, sizeof(*st));
    if (!st)
        goto fail;
    if (opts)
        st->opts = *opts;
    st->opts.content_type = NULL;
    if (st->opts.out_max == 0)
        st->opts.out_max = LIM_STREAM_OUT_MAX;
    if (st->opts.low_water == 0 || st->opts.low_water >= st->opts.out_max)
        st->opts.low_water = st->opts.out_max / 4;
    if (!st->opts.sse)
        st->opts.heartbeat_ms = 0; /* no neutral filler exists in JSON */
    st->scratch = evbuffer_new();
    st->defer = event_new(base, -1, 0, hs_stream_deferred, st);
    if (!st->scratch || !st->defer)
        goto fail;
    if (st->opts.heartbeat_ms > 0) {
        st->heartbeat = evtimer_new(base, hs_stream_on_heartbeat, st);
        if (!st->heartbeat)
            goto fail;
    }
    headers = evhttp_request_get_output_headers(ev);
    type = st->opts.sse ? "text/event-stream"
                        : (opts && opts->content_type ? opts->content_type : "application/json");
    evhttp_remove_header(headers, "Content-Type");
    if (evhttp_add_header(headers, "Content-Type", type) != 0)
        goto fail;
    if (st->opts.sse && evhttp_add_header(headers, "Cache-Control", "no-cache") != 0)
        goto fail;

    /* From here on nothing fails: the stream owns req. */
    st->req = req;
    st->srv = hs_req_server(req);
    st->ev = ev;
    st->evcon = evcon;
    st->status = status;
    hs_req_unpend(req);
    DL_APPEND(*hs_server_streams(st->srv), st);
    evhttp_request_set_on_complete_cb(ev, hs_stream_on_complete, st);
    evhttp_connection_set_closecb(evcon, hs_stream_on_conn_close, st);
    evhttp_send_reply_start(ev, status, hs_status_reason(status));
    st->out = bufferevent_get_output(evhttp_connection_get_bufferevent(evcon));
    st->out_cb = evbuffer_add_cb(st->out, hs_stream_on_out, st);
    hs_stream_arm_heartbeat(st);
    return st;
fail:
    if (st) {
        if (st->heartbeat)
            event_free(st->heartbeat);
        if (st->defer)
            event_free(st->defer);
        if (st->scratch)
            evbuffer_free(st->scratch);
        free(st);
    }
    hs_reply_error(req, 500, "cannot start a streamed answer");
    return NULL;
}

int hs_stream_write(struct hs_stream *st, const void *data, size_t len)
{
    if (!hs_stream_open(st))
        return -1;
    if (len == 0)
        return 0; /* an empty chunk would end the answer */
    if (!hs_stream_room(st, len))
        return -1;
    if (evbuffer_add(st->scratch, data, len) != 0)
        return -1;
    return hs_stream_send(st, st->scratch);
}

int hs_stream_write_buffer(struct hs_stream *st, struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);

    if (!hs_stream_open(st))
        return -1;
    if (len == 0)
        return 0;
    if (!hs_stream_room(st, len))
        return -1;
    return hs_stream_send(st, buf);
}

/* Appends "NAME: VALUE\n" for a value without line breaks. 0 or -1. */
static int hs_sse_field(struct evbuffer *b, const char *name, const char *value)
{
    if (strpbrk(value, "\r\n"))
        return -1;
    return evbuffer_add_printf(b, "%s: %s\n", name, value) < 0 ? -1 : 0;
}

int hs_stream_event(struct hs_stream *st, const char *id, const char *event, const char *data,
                    size_t len)
{
    size_t i = 0, start;
    int bad = 0;

    if (!hs_stream_open(st) || !st->opts.sse)
        return -1;
    if (id)
        bad |= hs_sse_field(st->scratch, "id", id);
    if (event)
        bad |= hs_sse_field(st->scratch, "event", event);
    /* One data: line per line of data; CR, LF and CRLF all break a line. */
    do {
        start = i;
        while (i < len && data[i] != '\n' && data[i] != '\r')
            i++;
        bad |= evbuffer_add(st->scratch, "data: ", 6);
        bad |= evbuffer_add(st->scratch, data + start, i - start);
        bad |= evbuffer_add(st->scratch, "\n", 1);
        if (i < len && data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        if (i < len)
            i++;
        else
            break;
    } while (1);
    bad |= evbuffer_add(st->scratch, "\n", 1);
    if (bad || !hs_stream_room(st, evbuffer_get_length(st->scratch))) {
        evbuffer_drain(st->scratch, evbuffer_get_length(st->scratch));
        return -1;
    }
    return hs_stream_send(st, st->scratch);
}

size_t hs_stream_pending(const struct hs_stream *st)
{
    return st->out ? evbuffer_get_length(st->out) : 0;
}

struct hs_req *hs_stream_req(struct hs_stream *st) { return st->req; }

void hs_stream_end(struct hs_stream *st)
{
    if (st->ending)
        return;
    hs_stream_set_why(st, HS_STREAM_ENDED);
    if (!st->ev || st->abort)
        return; /* already gone or closing: the close callback is due */
    st->ending = true;
    hs_server_count_ending(st->srv, 1);
    if (st->heartbeat)
        event_del(st->heartbeat);
    /* May complete at once (nothing chunked pending): the on-complete
     * callback then only schedules the close. */
    evhttp_send_reply_end(st->ev);
}

void hs_streams_shutdown(struct hs_stream *head)
{
    struct hs_stream *st, *tmp;

    DL_FOREACH_SAFE (head, st, tmp) {
        if (!hs_stream_open(st))
            continue;
        /* evhttp closes a connection after the answer when the answer's
         * headers say so; they were sent already, but this is read at the
         * end of the answer. */
        hs_stream_set_why(st, HS_STREAM_SHUTDOWN);
        if (st->above_low) {
            /* the client is behind (maybe stalled: more than low_water is
             * waiting for it): its last chunk could hold the drain until the
             * grace runs out; close instead, the answer cut short as a
             * shutdown cuts it */
            st->abort = true;
            hs_stream_schedule(st);
            continue;
        }
        evhttp_add_header(evhttp_request_get_output_headers(st->ev), "Connection", "close");
        hs_stream_end(st);
    }
}

void hs_streams_prepare_free(struct hs_stream *head)
{
    struct hs_stream *st;

    DL_FOREACH (head, st) {
        hs_stream_set_why(st, HS_STREAM_SHUTDOWN);
        st->freeing = true;
    }
}

void hs_streams_free_all(struct hs_stream **head)
{
    while (*head) {
        struct hs_stream *st = *head;

        /* evhttp_free freed every connection and request: drop the
         * pointers without touching what they pointed to. */
        st->out = NULL;
        st->out_cb = NULL;
        st->evcon = NULL;
        st->ev = NULL;
        hs_req_forget(st->req);
        hs_stream_finalize(st);
    }
}

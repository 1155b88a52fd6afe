/* server_int.h: what server.c and stream.c share inside common/http and
 * nobody else includes: a streamed answer takes a request over from the
 * server (it stops being a pending unanswered request), and the server
 * reaches its open streams at shutdown and when it is freed. */
#ifndef SVC_HTTP_SERVER_INT_H
#define SVC_HTTP_SERVER_INT_H

#include <stddef.h>

struct event_base;
struct evhttp_request;
struct hs_req;
struct hs_server;
struct hs_stream;

/* --- server.c, for stream.c --- */
/* The evhttp request behind req (borrowed), or NULL once forgotten. */
struct evhttp_request *hs_req_evreq(struct hs_req *req);
/* The server req arrived on (borrowed). */
struct hs_server *hs_req_server(struct hs_req *req);
/* The server's event base (borrowed). */
struct event_base *hs_server_base(struct hs_server *s);
/* Take req off the server's pending list: it is answered by a stream now
 * and no longer counts in hs_inflight. Decode its path and query first so
 * they stay readable after the evhttp request is gone. */
void hs_req_unpend(struct hs_req *req);
/* The evhttp request is gone (freed by libevent): forget it, so accessors
 * that need it answer NULL instead of touching freed memory. */
void hs_req_forget(struct hs_req *req);
/* Count req in the metrics with status and its latency so far, then free
 * req (not its evhttp request). The end of a streamed request. */
void hs_req_finish_stream(struct hs_req *req, int status);
/* The reason phrase for status. */
const char *hs_status_reason(int status);
/* The head of the server's list of open streams (for stream.c to link). */
struct hs_stream **hs_server_streams(struct hs_server *s);
/* Add delta to the count of streams whose last chunk is being written;
 * those count in hs_inflight so the drain lets them finish. */
void hs_server_count_ending(struct hs_server *s, int delta);

/* --- stream.c, for server.c --- */
/* End every stream of the list still open with HS_STREAM_SHUTDOWN: last
 * chunk sent, connection closed after it. */
void hs_streams_shutdown(struct hs_stream *head);
/* Before the server frees its evhttp: streams not ended yet will report
 * HS_STREAM_SHUTDOWN. */
void hs_streams_prepare_free(struct hs_stream *head);
/* After evhttp_free (every connection is gone): run the close callback of
 * every stream left and free it. */
void hs_streams_free_all(struct hs_stream **head);

#endif

/* client.c: the asynchronous HTTP client behind httpclient.h.
 *
 * One libcurl multi handle per client, driven by the client's libevent
 * event_base through the multi-socket API: libcurl tells us which sockets to
 * watch (hc_on_socket) and when to wake it up (hc_on_timer_set); libevent
 * tells libcurl when a socket is ready or the timer fired
 * (curl_multi_socket_action), and after every such action the finished
 * transfers are drained from curl_multi_info_read (hc_drain).
 *
 * Rules this file keeps:
 * - No libcurl call is made from inside a libcurl callback. The socket and
 *   timer callbacks only touch libevent; the write callback only copies.
 *   (For that reason socket events live in an fd-indexed table of our own
 *   rather than in curl_multi_assign.)
 * - A finished transfer is removed from the multi handle before the user's
 *   completion runs, so the completion may start new requests (hc_send) or
 *   cancel others (hc_cancel): hc_drain re-reads curl_multi_info_read on
 *   every iteration and holds no iterator across the callback, and
 *   curl_multi_remove_handle drops a cancelled call's pending DONE message.
 * - hc_send never completes a call synchronously.
 *
 * Keep-alive: the multi handle owns a connection cache of
 * HC_CONNECTIONS_MAX connections, shared by all transfers. Easy handles are
 * recycled through a small free pool (curl_easy_reset between uses).
 *
 * libcurl global state: curl_global_init runs once, from the first
 * hc_client_new (guarded by a static flag; services are single-threaded, so
 * call hc_client_new before starting any thread). curl_global_cleanup is
 * never called: the state lives as long as the process. */
#include "http/client.h"

#include "core/limits.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#define HC_POOL_MAX      16   /* idle easy handles kept for reuse */
#define HC_BODY_INITIAL  4096 /* first response buffer allocation */
#define HC_SOCKS_INITIAL 64   /* first size of the fd -> event table */

struct hc_call {
    struct hc_client *client;
    CURL *easy;                 /* owned; back to the pool when done */
    struct curl_slist *headers; /* owned; libcurl borrows it meanwhile */
    hc_done_fn done;
    hc_data_fn data; /* a stream: buf is handed to it from the loop */
    void *arg;
    int in_data;                          /* data is running on this call */
    int cancelled;                        /* hc_cancel during data: freed once data returns */
    char *buf;                            /* response body, NUL-terminated */
    size_t len;                           /* body bytes in buf */
    size_t cap;                           /* bytes allocated for buf */
    int too_big;                          /* write callback refused: over the cap */
    int oom;                              /* write callback refused: no memory */
    int finishing;                        /* done is running; hc_cancel is a no-op */
    struct timespec started;              /* CLOCK_MONOTONIC at hc_send */
    char errbuf[CURL_ERROR_SIZE];         /* libcurl's detailed error text */
    char keep[HC_HEADER_NAME_MAX + 1];    /* hc_request.keep_header; "": none */
    char header[HC_HEADER_VALUE_MAX + 1]; /* its value in the answer */
    int has_header;                       /* the answer had it */
    struct hc_call *prev;                 /* in-flight list links */
    struct hc_call *next;
};

struct hc_client {
    struct event_base *base; /* borrowed */
    CURLM *multi;
    struct event *timer;   /* libcurl's single timeout */
    struct event **socks;  /* indexed by fd: the event watching it */
    size_t nsocks;         /* slots in socks */
    struct hc_call *calls; /* in flight (attached to multi) */
    size_t inflight;
    CURL *pool[HC_POOL_MAX]; /* idle easy handles, already reset */
    size_t npool;
    int dispatching; /* a done callback is running */
    int freeing;     /* hc_client_free ran inside a done callback */
};

static int hc_global_ready; /* curl_global_init done (process-wide) */

/* Milliseconds from *from to now on the monotonic clock. */
static double hc_elapsed_ms(const struct timespec *from)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - from->tv_sec) * 1000.0 +
           (double)(now.tv_nsec - from->tv_nsec) / 1e6;
}

/* libcurl write callback: append to the call's body buffer. Refuses (returns
 * 0, which aborts the transfer with CURLE_WRITE_ERROR) when the body would
 * exceed HC_RESPONSE_MAX or memory runs out; the flags tell hc_finish why.
 * Borrows data; calls no libcurl function. */
static size_t hc_on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct hc_call *call = userp;
    size_t n = 0;
    size_t need = 0;
    size_t cap = 0;
    char *grown = NULL;

    if (nmemb != 0 && size > SIZE_MAX / nmemb) {
        call->too_big = 1;
        return 0;
    }
    n = size * nmemb;
    if (n > (size_t)HC_RESPONSE_MAX - call->len) {
        call->too_big = 1;
        return 0;
    }
    need = call->len + n + 1;
    if (need > call->cap) {
        cap = call->cap != 0 ? call->cap : HC_BODY_INITIAL;
        while (cap < need)
            cap *= 2;
        if (cap > (size_t)HC_RESPONSE_MAX + 1)
            cap = (size_t)HC_RESPONSE_MAX + 1;
        grown = realloc(call->buf, cap);
        if (grown == NULL) {
            call->oom = 1;
            return 0;
        }
        call->buf = grown;
        call->cap = cap;
    }
    memcpy(call->buf + call->len, data, n);
    call->len += n;
    call->buf[call->len] = '\0';
    return n;
}

/* libevent callback for a socket libcurl watches: hand the readiness to
 * libcurl, then complete what finished. arg is the client (not a per-socket
 * object: the socket's event may be freed during curl_multi_socket_action,
 * and c may be freed by hc_drain, so neither is touched afterwards). */
static void hc_on_socket_event(evutil_socket_t fd, short what, void *arg);

/* libevent callback for libcurl's timer: tell libcurl its timeout expired,
 * then complete what finished. Same rules as hc_on_socket_event. */
static void hc_on_timer_event(evutil_socket_t fd, short what, void *arg);

/* Forget the event watching fd, if any. */
static void hc_sock_forget(struct hc_client *c, curl_socket_t fd)
{
    if (fd < 0 || (size_t)fd >= c->nsocks || c->socks[fd] == NULL)
        return;
    event_free(c->socks[fd]);
    c->socks[fd] = NULL;
}

/* Make the fd table hold index fd. Returns 0, or -1 when out of memory (the
 * table is then unchanged). */
static int hc_sock_reserve(struct hc_client *c, curl_socket_t fd)
{
    size_t n = c->nsocks != 0 ? c->nsocks : HC_SOCKS_INITIAL;
    struct event **grown = NULL;

    if ((size_t)fd < c->nsocks)
        return 0;
    while (n <= (size_t)fd)
        n *= 2;
    grown = realloc(c->socks, n * sizeof(*grown));
    if (grown == NULL)
        return -1;
    memset(grown + c->nsocks, 0, (n - c->nsocks) * sizeof(*grown));
    c->socks = grown;
    c->nsocks = n;
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: libcurl wants fd watched for `what` (or no longer
 * watched). Keeps one persistent event per fd, re-assigned when the interest
 * changes. Only libevent calls here. Returns 0, or -1 on failure (libcurl
 * then fails the transfers on that socket). */
static int hc_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct hc_client *c = userp;
    struct event *ev = NULL;
    short kind = EV_PERSIST;

    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        hc_sock_forget(c, fd);
        return 0;
    }
    if (fd < 0 || hc_sock_reserve(c, fd) != 0)
        return -1;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    ev = c->socks[fd];
    if (ev == NULL) {
        ev = event_new(c->base, fd, kind, hc_on_socket_event, c);
        if (ev == NULL)
            return -1;
        c->socks[fd] = ev;
    } else {
        /* event_assign needs a non-pending event */
        event_del(ev);
        if (event_assign(ev, c->base, fd, kind, hc_on_socket_event, c) != 0)
            return -1;
    }
    if ((kind & (EV_READ | EV_WRITE)) == 0)
        return 0; /* CURL_POLL_NONE: keep the slot, watch nothing */
    if (event_add(ev, NULL) != 0)
        return -1;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants to be called back after timeout_ms
 * (0: as soon as possible, from the loop; -1: never). Only arms or disarms
 * the timer event: calling curl_multi_socket_action from here is not
 * allowed. Returns 0, or -1 when the timer could not be armed. */
static int hc_on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    struct hc_client *c = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return evtimer_add(c->timer, &tv) != 0 ? -1 : 0;
}

/* Give an easy handle back: reset it into the pool, or clean it up when the
 * pool is full. Takes ownership of easy (NULL is accepted). The handle must
 * not be attached to the multi handle. */
static void hc_easy_release(struct hc_client *c, CURL *easy)
{
    if (easy == NULL)
        return;
    if (c->npool < HC_POOL_MAX) {
        curl_easy_reset(easy);
        c->pool[c->npool++] = easy;
        return;
    }
    curl_easy_cleanup(easy);
}

/* Free a call that is detached from the multi handle and unlinked from the
 * in-flight list: its easy handle goes back to the pool. Accepts NULL. */
static void hc_call_free(struct hc_call *call)
{
    if (call == NULL)
        return;
    hc_easy_release(call->client, call->easy);
    curl_slist_free_all(call->headers);
    free(call->buf);
    free(call);
}

/* Unlink call from its client's in-flight list. */
static void hc_call_unlink(struct hc_call *call)
{
    struct hc_client *c = call->client;

    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = NULL;
    call->next = NULL;
    c->inflight--;
}

/* Translate libcurl's result for call into resp->error and resp->error_msg
 * (a static string or the call's errbuf, borrowed by resp). os_errno is
 * CURLINFO_OS_ERRNO. */
static void hc_map_error(struct hc_call *call, CURLcode result, long os_errno,
                         struct hc_response *resp)
{
    const char *detail = call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(result);

    switch (result) {
    case CURLE_OK:
        resp->error = HC_OK;
        resp->error_msg = "";
        break;
    case CURLE_COULDNT_CONNECT:
        resp->error = HC_ECONNECT;
        resp->error_msg = os_errno == ECONNREFUSED ? "connection refused" : detail;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        resp->error = HC_ETIMEOUT;
        resp->error_msg = "timeout";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        resp->error = HC_ERESOLVE;
        resp->error_msg = detail;
        break;
    case CURLE_FILESIZE_EXCEEDED: /* Content-Length over CURLOPT_MAXFILESIZE */
        resp->error = HC_ETOOBIG;
        resp->error_msg = "response too large";
        break;
    case CURLE_WRITE_ERROR:
        if (call->too_big) {
            resp->error = HC_ETOOBIG;
            resp->error_msg = "response too large";
        } else {
            resp->error = HC_EOTHER;
            resp->error_msg = call->oom ? "out of memory" : detail;
        }
        break;
    default:
        resp->error = HC_EOTHER;
        resp->error_msg = detail;
        break;
    }
}

/* Complete one finished transfer: detach it from libcurl, unlink it, run the
 * user's callback (which may hc_send, hc_cancel other calls, or even
 * hc_client_free), then free the call. Called only from hc_drain, outside
 * any libcurl callback. */
static void hc_finish(struct hc_client *c, struct hc_call *call, CURLcode result)
{
    struct hc_response resp;
    long status = 0;
    long os_errno = 0;

    memset(&resp, 0, sizeof(resp));
    if (curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;
    if (curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
        os_errno = 0;
    curl_multi_remove_handle(c->multi, call->easy);
    hc_call_unlink(call);
    call->finishing = 1;
    if (call->data != NULL && call->len > 0) {
        c->dispatching = 1;
        call->data(call->buf, call->len, call->arg);
        c->dispatching = 0;
        call->len = 0;
        if (c->freeing) {
            hc_call_free(call);
            return;
        }
    }

    hc_map_error(call, result, os_errno, &resp);
    resp.status = resp.error == HC_OK ? status : 0;
    if (resp.error == HC_OK && call->buf != NULL && call->data == NULL) {
        resp.body = call->buf;
        resp.body_len = call->len;
    } else {
        resp.body = "";
        resp.body_len = 0;
    }
    resp.elapsed_ms = hc_elapsed_ms(&call->started);
    resp.header = resp.error == HC_OK && call->has_header ? call->header : NULL;

    if (call->done != NULL) {
        c->dispatching = 1;
        call->done(&resp, call->arg);
        c->dispatching = 0;
    }
    hc_call_free(call);
}

/* Free everything the client owns. Every call must already be gone. Order:
 * idle easy handles, the multi handle (its cleanup may still report sockets
 * to hc_on_socket, so the table and timer outlive it), then the events. */
static void hc_client_destroy(struct hc_client *c)
{
    size_t i = 0;

    for (i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    c->npool = 0;
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    for (i = 0; i < c->nsocks; i++) {
        if (c->socks[i] != NULL)
            event_free(c->socks[i]);
    }
    free(c->socks);
    if (c->timer != NULL)
        event_free(c->timer);
    free(c);
}

/* Hand every stream's buffered bytes to its data callback, from the loop.
 * The walk restarts after each callback (which may cancel or start calls);
 * it ends because a delivered call has no bytes left. Stops when a callback
 * freed the client (the caller checks c->freeing). */
static void hc_deliver(struct hc_client *c)
{
    struct hc_call *call = c->calls;

    while (call != NULL && !c->freeing) {
        if (call->data == NULL || call->len == 0 || call->in_data) {
            call = call->next;
            continue;
        }
        call->in_data = 1;
        c->dispatching = 1;
        call->data(call->buf, call->len, call->arg);
        c->dispatching = 0;
        if (c->freeing)
            return; /* hc_cancel_all freed the call */
        call->in_data = 0;
        call->len = 0;
        if (call->cancelled) {
            curl_multi_remove_handle(c->multi, call->easy);
            hc_call_unlink(call);
            hc_call_free(call);
        }
        call = c->calls;
    }
}

/* Complete every transfer libcurl reports as done. Re-reads the message
 * queue each time, so callbacks that add or remove transfers are safe. When
 * a callback asked to free the client, stops and finishes that free; the
 * caller must not touch c afterwards. */
static void hc_drain(struct hc_client *c)
{
    hc_deliver(c);
    while (!c->freeing) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(c->multi, &left);
        char *priv = NULL;
        CURL *easy = NULL;
        CURLcode result = CURLE_OK;

        if (msg == NULL)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg dies in curl_multi_remove_handle: copy what we need first */
        easy = msg->easy_handle;
        result = msg->data.result;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
            continue; /* not ours; cannot happen */
        hc_finish(c, (struct hc_call *)(void *)priv, result);
        if (c->freeing)
            break;
    }
    if (c->freeing)
        hc_client_destroy(c);
}

static void hc_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct hc_client *c = arg;
    int action = 0;
    int running = 0;

    if (what & EV_READ)
        action |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, fd, action, &running);
    hc_drain(c);
}

static void hc_on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct hc_client *c = arg;
    int running = 0;

    (void)fd;
    (void)what;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    hc_drain(c);
}

void hc_kick(struct hc_client *c)
{
    int running = 0;

    /* libcurl arms a 0 ms timeout for every handle added: pending means
     * there is something to start. The timer stays armed; libcurl moves it
     * to its next deadline from inside the action. */
    if (c == NULL || c->dispatching || c->freeing || !evtimer_pending(c->timer, NULL))
        return;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    hc_drain(c);
}

/* Create a client on base (borrowed). Initialises libcurl's global state on
 * first use (see the file comment). Returns NULL on failure; caller frees
 * with hc_client_free. */
struct hc_client *hc_client_new(struct event_base *base)
{
    struct hc_client *c = NULL;
    int bad = 0;

    if (base == NULL)
        goto cleanup;
    if (!hc_global_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            goto cleanup;
        hc_global_ready = 1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto cleanup;
    c->base = base;
    c->timer = evtimer_new(base, hc_on_timer_event, c);
    if (c->timer == NULL)
        goto cleanup;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        goto cleanup;
    bad |= curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, hc_on_socket) != CURLM_OK;
    bad |= curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK;
    bad |= curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, hc_on_timer_set) != CURLM_OK;
    bad |= curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK;
    bad |= curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)HC_CONNECTIONS_MAX) != CURLM_OK;
    if (bad)
        goto cleanup;
    return c;

cleanup:
    if (c != NULL)
        hc_client_destroy(c);
    return NULL;
}

/* Remove every in-flight call from libcurl and free it, without callbacks. */
static void hc_cancel_all(struct hc_client *c)
{
    while (c->calls != NULL) {
        struct hc_call *call = c->calls;

        curl_multi_remove_handle(c->multi, call->easy);
        hc_call_unlink(call);
        hc_call_free(call);
    }
}

/* Cancel all calls in flight (no callbacks) and free the client. Accepts
 * NULL. From inside a done callback the calls are cancelled at once and the
 * rest of the teardown is deferred until that callback returns (the client
 * is then unusable: hc_send returns NULL). */
void hc_client_free(struct hc_client *c)
{
    if (c == NULL || c->freeing)
        return;
    hc_cancel_all(c);
    if (c->dispatching) {
        c->freeing = 1;
        return;
    }
    hc_client_destroy(c);
}

/* Is method one we send? NULL counts as GET. */
static int hc_method_ok(const char *method)
{
    static const char *const allowed[] = {"GET", "POST", "PUT", "DELETE"};
    size_t i = 0;

    if (method == NULL)
        return 1;
    for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (strcmp(method, allowed[i]) == 0)
            return 1;
    }
    return 0;
}

/* Build the request headers for req into *out (caller frees with
 * curl_slist_free_all, also on failure). "Expect:" turns off libcurl's
 * 100-continue round trip; a bodiless POST/PUT gets an empty Content-Type
 * so libcurl does not invent application/x-www-form-urlencoded. Returns 0,
 * or -1 when out of memory or content_type would break the header. */
static int hc_build_headers(const struct hc_request *req, int has_body, struct curl_slist **out)
{
    const char *ct = req->content_type;
    char line[LIM_ACL_TOKEN_MAX + 32];
    struct curl_slist *next = NULL;
    int n = 0;

    next = curl_slist_append(*out, "Expect:");
    if (next == NULL)
        return -1;
    *out = next;
    if (ct == NULL && has_body)
        ct = "application/json";
    if (ct == NULL) {
        next = curl_slist_append(*out, "Content-Type:");
    } else {
        if (strpbrk(ct, "\r\n") != NULL)
            return -1;
        n = snprintf(line, sizeof(line), "Content-Type: %s", ct);
        if (n < 0 || (size_t)n >= sizeof(line))
            return -1;
        next = curl_slist_append(*out, line);
    }
    if (next == NULL)
        return -1;
    *out = next;
    if (req->token != NULL && req->token[0] != '\0') {
        /* the token is a secret: the line is wiped once libcurl has it */
        if (strpbrk(req->token, "\r\n") != NULL)
            return -1;
        n = snprintf(line, sizeof(line), "X-Registry-Token: %s", req->token);
        if (n < 0 || (size_t)n >= sizeof(line))
            return -1;
        next = curl_slist_append(*out, line);
        memset(line, 0, sizeof(line));
        if (next == NULL)
            return -1;
        *out = next;
    }
    if (req->traceparent != NULL && req->traceparent[0] != '\0') {
        if (strpbrk(req->traceparent, "\r\n") != NULL)
            return -1;
        n = snprintf(line, sizeof(line), "traceparent: %s", req->traceparent);
        if (n < 0 || (size_t)n >= sizeof(line))
            return -1;
        next = curl_slist_append(*out, line);
        if (next == NULL)
            return -1;
        *out = next;
    }
    return 0;
}

/* libcurl's header callback (set only with a keep_header): keep the value
 * of that header, trimmed. Each call is one whole header line. */
static size_t hc_on_header(char *data, size_t size, size_t nitems, void *userp)
{
    struct hc_call *call = userp;
    size_t n = size * nitems, name = strlen(call->keep), end;
    const char *v = NULL;

    if (n <= name || data[name] != ':' || strncasecmp(data, call->keep, name) != 0)
        return n;
    v = data + name + 1;
    end = n - name - 1;
    while (end > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        end--;
    }
    while (end > 0 && (v[end - 1] == '\r' || v[end - 1] == '\n' || v[end - 1] == ' '))
        end--;
    if (end > HC_HEADER_VALUE_MAX)
        end = HC_HEADER_VALUE_MAX;
    memcpy(call->header, v, end);
    call->header[end] = '\0';
    call->has_header = 1;
    return n;
}

/* Set every option of one transfer on call->easy. Returns 0 or -1. */
static int hc_setup_easy(struct hc_call *call, const struct hc_request *req)
{
    CURL *e = call->easy;
    const char *method = req->method != NULL ? req->method : "GET";
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : (long)HC_TIMEOUT_DEFAULT_MS;
    long connect_timeout =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : (long)LIM_CONNECT_DEFAULT_MS;
    int is_get = strcmp(method, "GET") == 0;

    if (req->data != NULL)
        timeout = 0; /* a stream: no whole-transfer limit (idle_ms instead) */
    else if (connect_timeout > timeout)
        connect_timeout = timeout;
    int is_post = strcmp(method, "POST") == 0;
    int is_put = strcmp(method, "PUT") == 0;
    /* POST and PUT always send a body (maybe empty) so that libcurl never
     * falls back to reading one from stdin */
    int has_body = req->body != NULL || is_post || is_put;
    int bad = 0;

    if (hc_build_headers(req, req->body != NULL, &call->headers) != 0)
        return -1;
    bad |= curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, call) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hc_on_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, call) != CURLE_OK;
    if (req->keep_header != NULL) {
        if (strlen(req->keep_header) > HC_HEADER_NAME_MAX || req->keep_header[0] == '\0')
            return -1;
        strcpy(call->keep, req->keep_header);
        bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, hc_on_header) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, call) != CURLE_OK;
    }
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HC_RESPONSE_MAX) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout) != CURLE_OK;
    if (req->data != NULL && req->idle_ms > 0) {
        /* under 1 byte/s for idle_ms: libcurl ends it with a timeout */
        bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (req->idle_ms + 999) / 1000) != CURLE_OK;
    }
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 deprecated CURLOPT_PROTOCOLS */
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
           CURLE_OK;
#endif
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK;
    if (has_body) {
        /* the size must be set before COPYPOSTFIELDS, which copies it */
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t)(req->body != NULL ? req->body_len : 0)) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body != NULL ? req->body : "") !=
               CURLE_OK;
        if (!is_post)
            bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    } else if (is_get) {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

/* Start a request (see client.h). Copies everything in req; the call is
 * owned by the client until done runs or hc_cancel. Never calls done from
 * here: curl_multi_add_handle only arms the timer (0 ms), and the transfer
 * starts from the loop. Returns NULL for bad arguments (NULL client, request
 * or url; a method other than GET/POST/PUT/DELETE; a content_type, token or
 * traceparent with CR or LF) or when the request could not be set up. */
struct hc_call *hc_send(struct hc_client *c, const struct hc_request *req, hc_done_fn done,
                        void *arg)
{
    struct hc_call *call = NULL;

    if (c == NULL || c->freeing || req == NULL || req->url == NULL || !hc_method_ok(req->method))
        goto cleanup;
    call = calloc(1, sizeof(*call));
    if (call == NULL)
        goto cleanup;
    call->client = c;
    call->done = done;
    call->data = req->data;
    call->arg = arg;
    if (c->npool > 0) {
        call->easy = c->pool[--c->npool];
    } else {
        call->easy = curl_easy_init();
        if (call->easy == NULL)
            goto cleanup;
    }
    if (hc_setup_easy(call, req) != 0)
        goto cleanup;
    clock_gettime(CLOCK_MONOTONIC, &call->started);
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK)
        goto cleanup;
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    c->inflight++;
    return call;

cleanup:
    hc_call_free(call);
    return NULL;
}

/* Abandon a call still in flight: detach it from libcurl (its connection is
 * closed, not reused) and free it; done is not called. Accepts NULL. A call
 * whose done is running right now is left alone (it is freed when done
 * returns). */
void hc_cancel(struct hc_call *call)
{
    struct hc_client *c = NULL;

    if (call == NULL || call->finishing)
        return;
    if (call->in_data) {
        call->cancelled = 1; /* hc_deliver frees it when data returns */
        return;
    }
    c = call->client;
    curl_multi_remove_handle(c->multi, call->easy);
    hc_call_unlink(call);
    hc_call_free(call);
}

/* Number of calls in flight: sent and neither completed nor cancelled. */
size_t hc_inflight(const struct hc_client *c) { return c != NULL ? c->inflight : 0; }

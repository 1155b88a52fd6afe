/* http.c: svcctl's HTTP calls over libcurl's easy interface (see http.h). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/limits.h"

#define SCH_ERRBODY_MAX (64 * 1024) /* bytes kept of a stream's non-200 answer */

/* Where a transfer's body goes. */
struct sch_sink {
    struct sch_resp *out;
    size_t cap;   /* bytes out may hold; more fails the transfer */
    bool too_big; /* the cap was passed */
    CURL *easy;   /* to read the status from the write callback */
    sch_chunk_fn on_chunk;
    sch_stop_fn should_stop;
    void *arg;
    bool stopped; /* a callback asked to stop */
};

static int sch_append(struct sch_resp *r, const char *data, size_t n, size_t cap)
{
    char *grown;

    if (n > cap - r->len)
        return -1;
    grown = realloc(r->body, r->len + n + 1);
    if (!grown)
        return -1;
    memcpy(grown + r->len, data, n);
    r->body = grown;
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

/* libcurl's write callback: keep the body, or hand a 200 stream's pieces
 * on. Returning less than n fails the transfer (CURLE_WRITE_ERROR). */
static size_t sch_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct sch_sink *s = userp;
    size_t n = size * nmemb;
    long status = 0;

    if (s->on_chunk) {
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            if (s->on_chunk(data, n, s->arg) != 0) {
                s->stopped = true;
                return 0;
            }
            return n;
        }
    }
    if (sch_append(s->out, data, n, s->cap) != 0) {
        s->too_big = true;
        return 0;
    }
    return n;
}

/* libcurl's progress callback: nonzero aborts (CURLE_ABORTED_BY_CALLBACK). */
static int sch_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
    struct sch_sink *s = userp;

    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (s->should_stop && s->should_stop(s->arg)) {
        s->stopped = true;
        return 1;
    }
    return 0;
}

/* A new easy handle for url with the options every call shares, headers
 * in *hdrs (the caller frees both). NULL when out of memory. */
static CURL *sch_easy(const struct sch_opts *o, const char *url, const char *ctype,
                      const char *accept, struct curl_slist **hdrs)
{
    CURL *e = curl_easy_init();
    char line[64 + LIM_ACL_TOKEN_MAX];
    struct curl_slist *h = NULL, *next;

    *hdrs = NULL;
    if (!e)
        return NULL;
    if (o->token && *o->token) {
        snprintf(line, sizeof(line), "X-Registry-Token: %s", o->token);
        h = curl_slist_append(h, line);
    }
    if (ctype) {
        snprintf(line, sizeof(line), "Content-Type: %s", ctype);
        next = curl_slist_append(h, line);
        h = next ? next : h;
    }
    if (accept) {
        snprintf(line, sizeof(line), "Accept: %s", accept);
        next = curl_slist_append(h, line);
        h = next ? next : h;
    }
    /* no "Expect: 100-continue" wait before a PUT body */
    next = curl_slist_append(h, "Expect:");
    h = next ? next : h;
    *hdrs = h;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* the path as given: "a/../b" is a KV key the registry refuses, never "b" */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string form; the bitmask is deprecated */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_USERAGENT, "svcctl/" SVC_VERSION);
    return e;
}

/* err from a failed transfer: what curl said, or what we stopped for. */
static void sch_fail(const struct sch_sink *s, CURLcode rc, const char *ebuf, char *err,
                     size_t errlen)
{
    if (s->too_big)
        snprintf(err, errlen, "the answer is over %zu bytes", s->cap);
    else
        snprintf(err, errlen, "%s", *ebuf ? ebuf : curl_easy_strerror(rc));
}

int sch_call(const struct sch_opts *o, const char *method, const char *url, const char *body,
             size_t len, const char *ctype, const char *accept, struct sch_resp *out, char *err,
             size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    struct sch_sink sink = {.out = out, .cap = LIM_CLI_BODY_MAX};
    char ebuf[CURL_ERROR_SIZE] = "";
    CURL *e;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    e = sch_easy(o, url, ctype, accept, &hdrs);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sink.easy = e;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
    rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    else
        sch_fail(&sink, rc, ebuf, err, errlen);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        sch_resp_clear(out);
        return -1;
    }
    if (!out->body) { /* an empty answer still reads as "" */
        out->body = calloc(1, 1);
        if (!out->body) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

int sch_stream(const struct sch_opts *o, const char *url, const char *accept, sch_chunk_fn on_chunk,
               sch_stop_fn should_stop, void *arg, struct sch_resp *out, char *err, size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    struct sch_sink sink = {.out = out,
                            .cap = SCH_ERRBODY_MAX,
                            .on_chunk = on_chunk,
                            .should_stop = should_stop,
                            .arg = arg};
    char ebuf[CURL_ERROR_SIZE] = "";
    CURL *e;
    CURLcode rc;
    int ret = 0;

    memset(out, 0, sizeof(*out));
    e = sch_easy(o, url, NULL, accept, &hdrs);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sink.easy = e;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, sch_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &sink);
    /* the registry writes a heartbeat every 15 s: silence means it is gone */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)LIM_CLI_WATCH_IDLE_S);
    rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    if (sink.stopped)
        ret = 1;
    else if (rc != CURLE_OK) {
        sch_fail(&sink, rc, ebuf, err, errlen);
        ret = -1;
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    return ret;
}

void sch_resp_clear(struct sch_resp *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof(*r));
}

char *sch_escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i, j = 0;
    char *out = malloc(3 * n + 1);

    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
    return out;
}

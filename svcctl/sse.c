/* sse.c: the Server-Sent Events parser of svcctl watch (see sse.h). */
#include "sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A growing string capped by the parser's max. */
struct sse_str {
    char *s;
    size_t len, cap;
};

struct sse_parser {
    size_t max;          /* bytes an event may hold */
    struct sse_str line; /* the line being read */
    struct sse_str id, event, data;
    bool has_data; /* a data line came: the next one is joined with '\n' */
};

static int sse_put(struct sse_str *b, const char *s, size_t n, size_t max)
{
    if (n > max || b->len > max - n)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *grown;

        while (cap < b->len + n + 1)
            cap *= 2;
        grown = realloc(b->s, cap);
        if (!grown)
            return -1;
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

static void sse_reset(struct sse_str *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

static const char *sse_text(const struct sse_str *b) { return b->s ? b->s : ""; }

struct sse_parser *sse_new(size_t max)
{
    struct sse_parser *p = calloc(1, sizeof(*p));

    if (p)
        p->max = max;
    return p;
}

/* One whole line (without its end): a field, a comment, or the blank line
 * that dispatches the event. */
static int sse_line(struct sse_parser *p, const char *l, size_t n, sse_event_fn on_event, void *arg)
{
    const char *colon, *value;
    size_t flen, vlen;
    int rc = 0;

    if (n == 0) {
        if (p->has_data || p->event.len)
            rc = on_event(sse_text(&p->id), sse_text(&p->event), sse_text(&p->data), arg) ? 1 : 0;
        sse_reset(&p->event);
        sse_reset(&p->data);
        p->has_data = false;
        return rc; /* the id is kept, as the last event id of the stream */
    }
    if (l[0] == ':')
        return 0;
    colon = memchr(l, ':', n);
    flen = colon ? (size_t)(colon - l) : n;
    value = colon ? colon + 1 : l + n;
    vlen = (size_t)(l + n - value);
    if (vlen && value[0] == ' ')
        value++, vlen--;
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (p->has_data && sse_put(&p->data, "\n", 1, p->max) != 0)
            return -1;
        p->has_data = true;
        return sse_put(&p->data, value, vlen, p->max);
    }
    if (flen == 5 && memcmp(l, "event", 5) == 0) {
        sse_reset(&p->event);
        return sse_put(&p->event, value, vlen, p->max);
    }
    if (flen == 2 && memcmp(l, "id", 2) == 0) {
        sse_reset(&p->id);
        return sse_put(&p->id, value, vlen, p->max);
    }
    return 0; /* retry: and anything else: not ours */
}

int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn on_event, void *arg)
{
    while (len > 0) {
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) : len;
        size_t llen;
        int rc;

        if (sse_put(&p->line, buf, n, p->max) != 0)
            return -1;
        buf += n;
        len -= n;
        if (!nl)
            break;
        buf++, len--; /* the '\n' */
        llen = p->line.len;
        if (llen && p->line.s[llen - 1] == '\r')
            llen--;
        rc = sse_line(p, sse_text(&p->line), llen, on_event, arg);
        sse_reset(&p->line);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void sse_free(struct sse_parser *p)
{
    if (!p)
        return;
    free(p->line.s);
    free(p->id.s);
    free(p->event.s);
    free(p->data.s);
    free(p);
}

/* trace.c: W3C traceparent parsing, ids and formatting (see trace.h).
 * Random ids come from getrandom(2), read into a pool as codec/uid.c does
 * so a busy facade pays one system call per few hundred ids; should the
 * kernel give nothing, a splitmix64 sequence seeded from the clock and the
 * pid keeps ids unique enough for correlating log lines (they are not
 * secrets). */
#include "http/trace.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TRC_POOL_BYTES 4096

static unsigned char trc_pool[TRC_POOL_BYTES]; /* event-loop thread only */
static size_t trc_used = TRC_POOL_BYTES;
static uint64_t trc_fallback_state;

/* Next value of the fallback generator (splitmix64). */
static uint64_t trc_splitmix(void)
{
    uint64_t z;

    if (trc_fallback_state == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        trc_fallback_state = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
                             ((uint64_t)getpid() << 16) ^ 0x9e3779b97f4a7c15ULL;
    }
    z = (trc_fallback_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fill out with n (<= TRC_POOL_BYTES) random bytes. */
static void trc_random(unsigned char *out, size_t n)
{
    size_t i;

    if (trc_used + n > TRC_POOL_BYTES) {
        size_t got = 0;

        while (got < TRC_POOL_BYTES) {
            ssize_t r = getrandom(trc_pool + got, TRC_POOL_BYTES - got, 0);

            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got < TRC_POOL_BYTES) {
            for (i = 0; i < n; i++)
                out[i] = (unsigned char)(trc_splitmix() >> 24);
            return;
        }
        trc_used = 0;
    }
    memcpy(out, trc_pool + trc_used, n);
    memset(trc_pool + trc_used, 0, n); /* never hand the same bytes out twice */
    trc_used += n;
}

void trc_random_hex(char *hex, unsigned n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[TRC_TRACE_ID_LEN / 2];
    unsigned nb = n / 2, i;
    bool zero = true;

    if (nb > sizeof(bytes))
        nb = sizeof(bytes);
    trc_random(bytes, nb);
    for (i = 0; i < nb; i++)
        zero = zero && bytes[i] == 0;
    if (zero && nb > 0)
        bytes[nb - 1] = 1; /* an all-zero id is invalid */
    for (i = 0; i < nb; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    hex[2 * nb] = '\0';
}

/* Whether s[0..n) are lower-case hex digits, and (when nonzero) not all '0'. */
static bool trc_hex(const char *s, size_t n, bool nonzero)
{
    bool any = false;
    size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        any = any || c != '0';
    }
    return !nonzero || any;
}

bool trc_trace_id_valid(const char *s)
{
    return s != NULL && strlen(s) == TRC_TRACE_ID_LEN && trc_hex(s, TRC_TRACE_ID_LEN, true);
}

int trc_parse(const char *value, char trace_id[TRC_TRACE_ID_LEN + 1], unsigned *flags)
{
    /* 00-<trace 32>-<span 16>-<flags 2>: dashes at 2, 35 and 52 */
    if (value == NULL || strlen(value) != TRC_PARENT_LEN)
        return -1;
    if (value[0] != '0' || value[1] != '0' || value[2] != '-' || value[35] != '-' ||
        value[52] != '-')
        return -1;
    if (!trc_hex(value + 3, TRC_TRACE_ID_LEN, true) ||
        !trc_hex(value + 36, TRC_SPAN_ID_LEN, true) || !trc_hex(value + 53, 2, false))
        return -1;
    if (trace_id != NULL) {
        memcpy(trace_id, value + 3, TRC_TRACE_ID_LEN);
        trace_id[TRC_TRACE_ID_LEN] = '\0';
    }
    if (flags != NULL) {
        unsigned hi = (unsigned)(value[53] <= '9' ? value[53] - '0' : value[53] - 'a' + 10);
        unsigned lo = (unsigned)(value[54] <= '9' ? value[54] - '0' : value[54] - 'a' + 10);

        *flags = hi << 4 | lo;
    }
    return 0;
}

bool trc_begin(struct trc_ctx *ctx, const char *value)
{
    bool taken = trc_parse(value, ctx->trace_id, &ctx->flags) == 0;

    if (!taken) {
        trc_random_hex(ctx->trace_id, TRC_TRACE_ID_LEN);
        ctx->flags = TRC_FLAG_SAMPLED;
    }
    trc_random_hex(ctx->span_id, TRC_SPAN_ID_LEN);
    return taken;
}

void trc_child(const struct trc_ctx *ctx, struct trc_ctx *child)
{
    memcpy(child->trace_id, ctx->trace_id, sizeof(child->trace_id));
    child->flags = ctx->flags;
    trc_random_hex(child->span_id, TRC_SPAN_ID_LEN);
}

void trc_format(const struct trc_ctx *ctx, char out[TRC_PARENT_LEN + 1])
{
    snprintf(out, TRC_PARENT_LEN + 1, "00-%.32s-%.16s-%02x", ctx->trace_id, ctx->span_id,
             ctx->flags & 0xffu);
}

void trc_format_child(const char *trace_id, char out[TRC_PARENT_LEN + 1])
{
    char span[TRC_SPAN_ID_LEN + 1];

    trc_random_hex(span, TRC_SPAN_ID_LEN);
    snprintf(out, TRC_PARENT_LEN + 1, "00-%.32s-%s-01", trace_id, span);
}

/* fuzz_jsonflat.c: libFuzzer harness checking common/jsonflat against
 * jansson, the authority it stands in for. For any bytes:
 *   - when jf_parse says JF_OK, json_loadb(flags 0) must accept the same
 *     bytes and the value rebuilt from the tokens must be json_equal to
 *     jansson's (byte-identical strings, same integers, same structure);
 *   - the tokens must be well formed: `end` links nest, counts match,
 *     strings lie inside the input, jf_get finds every key;
 *   - the capacity is exact: the token count suffices, one fewer does not,
 *     and a tiny array fails exactly when the document needs more.
 * Any breach abort()s so libFuzzer records the input. jf_parse answering
 * JF_OTHER for valid JSON is allowed (the subset is narrow) and not checked. */
#include "codec/jsonflat.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CAP      256
#define FZ_TINY_CAP 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A new jansson value equal to the token tree at toks[i] (borrowed), or
 * NULL when jansson refuses a part (json_stringn rejects bad UTF-8, which
 * would itself be a jf_ bug). Caller owns the reference. */
static json_t *fz_build(const struct jf_tok *toks, size_t i)
{
    const struct jf_tok *t = &toks[i];
    json_t *v = NULL;
    size_t k;

    switch (t->type) {
    case JF_OBJECT:
        v = json_object();
        for (k = i + 1; v != NULL && k < t->end; k = toks[k + 1].end) {
            /* Keys hold no NUL (jf_ refuses control bytes), so a C string
             * copy is the whole key. */
            char *key = strndup(toks[k].str, toks[k].len);
            json_t *val = fz_build(toks, k + 1);
            int bad = key == NULL;

            if (bad)
                json_decref(val);
            else
                bad = json_object_set_new(v, key, val) != 0; /* steals val, even on error */
            free(key);
            if (bad) {
                json_decref(v);
                v = NULL;
            }
        }
        return v;
    case JF_ARRAY:
        v = json_array();
        for (k = i + 1; v != NULL && k < t->end; k = toks[k].end) {
            /* Steals the element, even on error; NULL is refused. */
            if (json_array_append_new(v, fz_build(toks, k)) != 0) {
                json_decref(v);
                v = NULL;
            }
        }
        return v;
    case JF_STRING:
        return json_stringn(t->str, t->len);
    case JF_INT:
        return json_integer((json_int_t)t->num);
    case JF_TRUE:
        return json_true();
    case JF_FALSE:
        return json_false();
    case JF_NULL:
        return json_null();
    }
    return NULL;
}

/* Check the token tree at toks[i], which must end exactly at `limit`
 * (its parent's bound), against the input [buf, buf + size). */
static void fz_check_tree(const struct jf_tok *toks, size_t i, size_t limit, const char *buf,
                          size_t size, unsigned depth)
{
    const struct jf_tok *t = &toks[i];
    size_t k;
    size_t count = 0;

    if (t->end <= i || t->end > limit)
        abort();
    if (t->type == JF_STRING) {
        if (t->str < buf || (size_t)(t->str - buf) + t->len > size || t->end != i + 1)
            abort();
        return;
    }
    if (t->str != NULL || t->len != 0)
        abort();
    if ((t->type == JF_ARRAY || t->type == JF_OBJECT) && depth > JF_DEPTH_MAX)
        abort();
    if (t->type == JF_ARRAY) {
        for (k = i + 1; k < t->end; k = toks[k].end) {
            fz_check_tree(toks, k, t->end, buf, size, depth + 1);
            count++;
        }
    } else if (t->type == JF_OBJECT) {
        if (t->count > JF_KEYS_MAX)
            abort();
        for (k = i + 1; k < t->end; k = toks[k + 1].end) {
            char key[64];
            long at;

            if (toks[k].type != JF_STRING || k + 1 >= t->end)
                abort();
            fz_check_tree(toks, k, t->end, buf, size, depth + 1);
            fz_check_tree(toks, k + 1, t->end, buf, size, depth + 1);
            /* jf_get must find every (short) key at its own value. */
            if (toks[k].len < sizeof(key)) {
                memcpy(key, toks[k].str, toks[k].len);
                key[toks[k].len] = '\0';
                at = jf_get(toks, i, key);
                if (at != (long)(k + 1) || !jf_streq(&toks[k], key))
                    abort();
            }
            count++;
        }
    } else {
        if (t->end != i + 1 || t->count != 0 || (t->type != JF_INT && t->num != 0))
            abort();
        return;
    }
    if (count != t->count)
        abort();
}

/* True when the n tokens of a and b agree field by field. */
static int fz_same_tokens(const struct jf_tok *a, const struct jf_tok *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (a[i].type != b[i].type || a[i].str != b[i].str || a[i].len != b[i].len ||
            a[i].num != b[i].num || a[i].count != b[i].count || a[i].end != b[i].end)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct jf_tok toks[FZ_CAP];
    static struct jf_tok again[FZ_CAP];
    struct jf_tok tiny[FZ_TINY_CAP];
    const char *buf = (const char *)data;
    json_error_t err;
    json_t *theirs;
    json_t *ours;
    size_t n = 0;
    size_t n2 = 0;
    int rc;
    int rc_tiny;

    rc = jf_parse(buf, size, toks, FZ_CAP, &n);
    rc_tiny = jf_parse(buf, size, tiny, FZ_TINY_CAP, &n2);
    if (rc != JF_OK) {
        /* Fewer tokens cannot turn a refusal into an answer. */
        if (n != 0 || rc_tiny != JF_OTHER || n2 != 0)
            abort();
        return 0;
    }
    if (rc_tiny != (n <= FZ_TINY_CAP ? JF_OK : JF_OTHER))
        abort();
    if (n == 0 || n > FZ_CAP || toks[0].end != n)
        abort();
    if (toks[0].type != JF_OBJECT && toks[0].type != JF_ARRAY)
        abort();
    fz_check_tree(toks, 0, n, buf, size, 1);

    /* Exactly n tokens suffice and give the same tokens; n - 1 do not. */
    if (jf_parse(buf, size, again, n, &n2) != JF_OK || n2 != n || !fz_same_tokens(again, toks, n))
        abort();
    if (jf_parse(buf, size, again, n - 1, &n2) != JF_OTHER)
        abort();

    theirs = json_loadb(buf, size, 0, &err);
    if (theirs == NULL)
        abort(); /* jf_ accepted what jansson refuses */
    ours = fz_build(toks, 0);
    if (ours == NULL || !json_equal(ours, theirs))
        abort(); /* jf_ read it differently */
    json_decref(ours);
    json_decref(theirs);
    return 0;
}

/* jsonflat.c: the allocation-free fast-path JSON reader (see jsonflat.h).
 * A recursive-descent parser, at most JF_DEPTH_MAX calls deep, that fills
 * the caller's token array in one pass. Every rule here mirrors what
 * jansson's json_loadb (flags 0) accepts, restricted to the subset; every
 * doubt answers JF_OTHER, never a guess, since jansson is the fallback.
 * String bodies are scanned 8 bytes at a time until a byte needs a look
 * (a quote, a backslash, a control byte or a non-ASCII byte). */
#include "codec/jsonflat.h"

#include "codec/utf8.h"

#include <string.h>

#define JF_ONES  UINT64_C(0x0101010101010101)
#define JF_HIGHS UINT64_C(0x8080808080808080)

/* The cursor and the output of one jf_parse call. */
struct jf_parser {
    const char *p;       /* next byte to read; never beyond end */
    const char *end;     /* buf + len: one past the last readable byte */
    struct jf_tok *toks; /* borrowed from the caller */
    size_t cap;          /* entries in toks */
    size_t n;            /* entries used */
};

/* The byte at the cursor as 0..255, or -1 at the end of the input. */
static int jf_peek(const struct jf_parser *ps)
{
    return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

/* JSON whitespace, exactly jansson's set: no \f or \v. */
static bool jf_is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool jf_is_digit(int c) { return c >= '0' && c <= '9'; }

static void jf_skip_ws(struct jf_parser *ps)
{
    while (ps->p < ps->end && jf_is_ws((unsigned char)*ps->p))
        ps->p++;
}

/* Scalars must be followed by one of these. Jansson would reject the rest
 * too ("12abc", "truex", "1.5" is a real we do not read), and the container
 * check after the value would catch them; checking here says it plainly. */
static bool jf_is_delim(int c) { return jf_is_ws(c) || c == ',' || c == ']' || c == '}'; }

/* Append a token of the given type with every other field zero and `end`
 * just past itself (containers fix it up when they close). Returns its
 * index, or -1 when the caller's array is full. */
static long jf_tok_push(struct jf_parser *ps, enum jf_type type)
{
    struct jf_tok *t;

    if (ps->n >= ps->cap)
        return -1;
    t = &ps->toks[ps->n];
    t->str = NULL;
    t->num = 0;
    t->len = 0;
    t->count = 0;
    t->type = type;
    ps->n++;
    /* n <= len <= JF_LEN_MAX: every token takes at least one input byte. */
    t->end = (uint32_t)ps->n;
    return (long)(ps->n - 1);
}

/* True when any byte of the 8-byte word w is one the string scanner must
 * look at: below 0x20, '"', '\\', or 0x80 and above. The classic SWAR tests
 * ("has a byte less than n", "has a zero byte") are exact about whether such
 * a byte exists, which is all we ask; the byte loop then decides. */
static bool jf_word_needs_look(uint64_t w)
{
    uint64_t q = w ^ (JF_ONES * '"');
    uint64_t b = w ^ (JF_ONES * '\\');
    uint64_t hits = (w - JF_ONES * 0x20) & ~w;

    hits |= (q - JF_ONES) & ~q;
    hits |= (b - JF_ONES) & ~b;
    return ((hits | w) & JF_HIGHS) != 0;
}

/* Read the string whose opening quote is at the cursor into a JF_STRING
 * token (key or value) and move past its closing quote. Any escape, any
 * byte below 0x20 (NUL included) and any ill-formed UTF-8 is JF_OTHER. */
static int jf_parse_string(struct jf_parser *ps)
{
    const unsigned char *start = (const unsigned char *)ps->p + 1;
    const unsigned char *end = (const unsigned char *)ps->end;
    const unsigned char *p = start;
    long i;

    for (;;) {
        uint64_t w;
        unsigned char c;
        size_t seq;

        while ((size_t)(end - p) >= sizeof(w)) {
            memcpy(&w, p, sizeof(w));
            if (jf_word_needs_look(w))
                break;
            p += sizeof(w);
        }
        if (p == end)
            return JF_OTHER; /* unterminated */
        c = *p;
        if (c == '"')
            break;
        if (c < 0x20 || c == '\\')
            return JF_OTHER;
        if (c < 0x80) {
            p++;
            continue;
        }
        seq = utf8_seq_len(p, (size_t)(end - p)); /* jansson's UTF-8 rules */
        if (seq == 0)
            return JF_OTHER;
        p += seq;
    }
    i = jf_tok_push(ps, JF_STRING);
    if (i < 0)
        return JF_OTHER;
    ps->toks[i].str = (const char *)start;
    ps->toks[i].len = (uint32_t)(p - start); /* < len <= JF_LEN_MAX */
    ps->p = (const char *)p + 1;
    return JF_OK;
}

/* Read the integer at the cursor ('-' or a digit) into a JF_INT token.
 * Grammar -?(0|[1-9][0-9]*) within int64, as jansson reads it with strtoll:
 * "-0" is 0; a leading zero, a fraction, an exponent or a value out of
 * range (jansson refuses those) is JF_OTHER. */
static int jf_parse_int(struct jf_parser *ps)
{
    const char *p = ps->p;
    bool neg = false;
    uint64_t mag = 0;
    uint64_t limit;
    int digits = 0;
    long i;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p == ps->end || !jf_is_digit((unsigned char)*p))
        return JF_OTHER;
    if (*p == '0') {
        p++;
    } else {
        /* 19 decimal digits always fit a uint64_t; a 20th cannot fit int64. */
        while (p < ps->end && jf_is_digit((unsigned char)*p)) {
            if (digits == 19)
                return JF_OTHER;
            mag = mag * 10 + (uint64_t)(*p - '0');
            digits++;
            p++;
        }
    }
    /* Also refuses "01", "1.5", "1e5". */
    if (p == ps->end || !jf_is_delim((unsigned char)*p))
        return JF_OTHER;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (mag > limit)
        return JF_OTHER;
    i = jf_tok_push(ps, JF_INT);
    if (i < 0)
        return JF_OTHER;
    if (!neg)
        ps->toks[i].num = (int64_t)mag;
    else if (mag == limit)
        ps->toks[i].num = INT64_MIN;
    else
        ps->toks[i].num = -(int64_t)mag;
    ps->p = p;
    return JF_OK;
}

/* Read the literal word (true, false or null, n bytes) at the cursor into
 * a token of the given type; it must be followed by a delimiter. */
static int jf_parse_word(struct jf_parser *ps, const char *word, size_t n, enum jf_type type)
{
    if ((size_t)(ps->end - ps->p) <= n || memcmp(ps->p, word, n) != 0)
        return JF_OTHER; /* <= : a delimiter must follow inside the input */
    if (!jf_is_delim((unsigned char)ps->p[n]))
        return JF_OTHER;
    if (jf_tok_push(ps, type) < 0)
        return JF_OTHER;
    ps->p += n;
    return JF_OK;
}

/* True when the key token toks[key] repeats one of the earlier keys of the
 * object at toks[obj] (at most JF_KEYS_MAX - 1 of them, so the quadratic
 * walk stays small). Earlier values are complete, so their `end` is set. */
static bool jf_key_repeats(const struct jf_tok *toks, size_t obj, size_t key)
{
    const struct jf_tok *kt = &toks[key];
    size_t k;

    for (k = obj + 1; k < key; k = toks[k + 1].end) {
        if (toks[k].len == kt->len && memcmp(toks[k].str, kt->str, kt->len) == 0)
            return true;
    }
    return false;
}

static int jf_parse_value(struct jf_parser *ps, unsigned depth);

/* Read the object whose '{' is at the cursor; it sits at `depth`. */
static int jf_parse_object(struct jf_parser *ps, unsigned depth)
{
    long obj;
    uint32_t count = 0;

    obj = jf_tok_push(ps, JF_OBJECT);
    if (obj < 0)
        return JF_OTHER;
    ps->p++;
    jf_skip_ws(ps);
    if (jf_peek(ps) == '}') {
        ps->p++;
        return JF_OK; /* count 0, end already just past itself */
    }
    for (;;) {
        size_t key = ps->n;
        int c;

        if (count == JF_KEYS_MAX || jf_peek(ps) != '"')
            return JF_OTHER;
        if (jf_parse_string(ps) != JF_OK)
            return JF_OTHER;
        if (jf_key_repeats(ps->toks, (size_t)obj, key))
            return JF_OTHER;
        jf_skip_ws(ps);
        if (jf_peek(ps) != ':')
            return JF_OTHER;
        ps->p++;
        jf_skip_ws(ps);
        if (jf_parse_value(ps, depth) != JF_OK)
            return JF_OTHER;
        count++;
        jf_skip_ws(ps);
        c = jf_peek(ps);
        if (c == '}')
            break;
        if (c != ',')
            return JF_OTHER; /* also the end of the input */
        ps->p++;
        jf_skip_ws(ps);
    }
    ps->p++;
    ps->toks[obj].count = count;
    ps->toks[obj].end = (uint32_t)ps->n;
    return JF_OK;
}

/* Read the array whose '[' is at the cursor; it sits at `depth`. */
static int jf_parse_array(struct jf_parser *ps, unsigned depth)
{
    long arr;
    uint32_t count = 0;

    arr = jf_tok_push(ps, JF_ARRAY);
    if (arr < 0)
        return JF_OTHER;
    ps->p++;
    jf_skip_ws(ps);
    if (jf_peek(ps) == ']') {
        ps->p++;
        return JF_OK;
    }
    for (;;) {
        int c;

        if (jf_parse_value(ps, depth) != JF_OK)
            return JF_OTHER;
        count++; /* <= tokens <= JF_LEN_MAX: no wrap */
        jf_skip_ws(ps);
        c = jf_peek(ps);
        if (c == ']')
            break;
        if (c != ',')
            return JF_OTHER;
        ps->p++;
        jf_skip_ws(ps);
    }
    ps->p++;
    ps->toks[arr].count = count;
    ps->toks[arr].end = (uint32_t)ps->n;
    return JF_OK;
}

/* Read one value at the cursor (whitespace already skipped) held by a
 * container at `depth` (0 for the root). A container value sits one deeper. */
static int jf_parse_value(struct jf_parser *ps, unsigned depth)
{
    int c = jf_peek(ps);

    switch (c) {
    case '{':
    case '[':
        if (depth + 1 > JF_DEPTH_MAX)
            return JF_OTHER;
        return c == '{' ? jf_parse_object(ps, depth + 1) : jf_parse_array(ps, depth + 1);
    case '"':
        return jf_parse_string(ps);
    case 't':
        return jf_parse_word(ps, "true", 4, JF_TRUE);
    case 'f':
        return jf_parse_word(ps, "false", 5, JF_FALSE);
    case 'n':
        return jf_parse_word(ps, "null", 4, JF_NULL);
    default:
        if (c == '-' || jf_is_digit(c))
            return jf_parse_int(ps);
        return JF_OTHER; /* '+', '.', a stray byte, the end of the input */
    }
}

/* See jsonflat.h. Nothing is read before the length checks, and then only
 * [buf, buf + len). */
int jf_parse(const char *buf, size_t len, struct jf_tok *toks, size_t cap, size_t *ntoks)
{
    struct jf_parser ps;
    int c;

    if (ntoks != NULL)
        *ntoks = 0;
    if (buf == NULL || len == 0 || len > JF_LEN_MAX)
        return JF_OTHER;
    ps.p = buf;
    ps.end = buf + len;
    ps.toks = toks;
    ps.cap = toks != NULL ? cap : 0;
    ps.n = 0;

    jf_skip_ws(&ps);
    c = jf_peek(&ps);
    if (c != '{' && c != '[') /* jansson takes no scalar root without JSON_DECODE_ANY */
        return JF_OTHER;
    if (jf_parse_value(&ps, 0) != JF_OK)
        return JF_OTHER;
    jf_skip_ws(&ps);
    if (ps.p != ps.end)
        return JF_OTHER;
    if (ntoks != NULL)
        *ntoks = ps.n;
    return JF_OK;
}

/* True when t is a string of exactly the n bytes at s. */
static bool jf_tok_is(const struct jf_tok *t, const char *s, size_t n)
{
    return t->type == JF_STRING && t->len == n && memcmp(t->str, s, n) == 0;
}

/* See jsonflat.h. Keys are distinct (jf_parse refuses duplicates), so the
 * first match is the only one. */
long jf_get(const struct jf_tok *toks, size_t obj, const char *key)
{
    size_t n;
    size_t k;

    if (toks == NULL || key == NULL || toks[obj].type != JF_OBJECT)
        return -1;
    n = strlen(key);
    for (k = obj + 1; k < toks[obj].end; k = toks[k + 1].end) {
        if (jf_tok_is(&toks[k], key, n))
            return (long)(k + 1);
    }
    return -1;
}

bool jf_streq(const struct jf_tok *t, const char *s)
{
    if (t == NULL || s == NULL)
        return false;
    return jf_tok_is(t, s, strlen(s));
}

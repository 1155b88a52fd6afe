/* acl.c: the token table and its checks (see acl.h).
 *
 * Tokens are kept in fixed-width, zero-padded slots of LIM_ACL_TOKEN_MAX
 * bytes. A lookup copies the presented token into a slot of the same
 * shape and compares it with every stored slot over the full width, OR-ing
 * the byte differences (no early exit, no strcmp, no hash keyed by the
 * secret), then picks the matching index with masks: the time taken
 * depends on the number of tokens only, never on which bytes matched.
 * Everything else (the rules of the token found) is not secret. */
#include "auth/acl.h"

#include "core/errbuf.h"
#include "core/limits.h"
#include "proto/registry_v1.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ACL_RULE_SERVICE "service:"
#define ACL_KV_PREFIX    "config/"
#define ACL_STR2(x)      #x
#define ACL_STR(x)       ACL_STR2(x) /* a limit's value as text */

struct acl_token {
    unsigned char secret[LIM_ACL_TOKEN_MAX]; /* zero-padded */
    size_t len;                              /* bytes of secret in use */
    bool write;                              /* "write": everything */
    char **services;                         /* owned: "service:<name>" names */
    size_t nservices;
};

struct acl {
    struct acl_token *tok; /* owned array of n */
    size_t n, cap;
    bool anonymous_read;
};

struct acl *acl_new(void) { return calloc(1, sizeof(struct acl)); }

/* Wipe a buffer that held a secret (a plain memset may be optimised out
 * before free; the volatile pointer keeps it). */
static void acl_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n-- > 0)
        *v++ = 0;
}

void acl_free(struct acl *a)
{
    size_t i, j;

    if (!a)
        return;
    for (i = 0; i < a->n; i++) {
        for (j = 0; j < a->tok[i].nservices; j++)
            free(a->tok[i].services[j]);
        free(a->tok[i].services);
    }
    if (a->tok)
        acl_wipe(a->tok, a->cap * sizeof(*a->tok));
    free(a->tok);
    free(a);
}

bool acl_token_valid(const char *token)
{
    size_t i;

    if (!token || !token[0])
        return false;
    for (i = 0; token[i]; i++) {
        if (i >= LIM_ACL_TOKEN_MAX || (unsigned char)token[i] < 0x21 ||
            (unsigned char)token[i] > 0x7e)
            return false;
    }
    return true;
}

/* 1 when x is 0, else 0, without a branch (x below 2^31). */
static uint32_t acl_ct_is_zero(uint32_t x) { return ((x - 1u) >> 31) & 1u; }

/* The stored token equal to token (borrowed), or NULL; constant time in
 * the bytes (see the file comment). */
static struct acl_token *acl_find(const struct acl *a, const char *token)
{
    unsigned char given[LIM_ACL_TOKEN_MAX];
    size_t len = strnlen(token, LIM_ACL_TOKEN_MAX + 1);
    size_t k, i, idx = 0;
    uint32_t hit = 0;

    memset(given, 0, sizeof(given));
    memcpy(given, token, len < sizeof(given) ? len : sizeof(given));
    for (k = 0; k < a->n; k++) {
        uint32_t diff = (uint32_t)(a->tok[k].len ^ len);
        uint32_t eq;

        for (i = 0; i < LIM_ACL_TOKEN_MAX; i++)
            diff |= (uint32_t)(a->tok[k].secret[i] ^ given[i]);
        eq = acl_ct_is_zero(diff);
        idx |= k & ((size_t)0 - (size_t)eq); /* tokens are unique: one match at most */
        hit |= eq;
    }
    acl_wipe(given, sizeof(given));
    return hit ? &a->tok[idx] : NULL;
}

/* The stored token equal to token, by a plain compare: only for building
 * the table (acl_add), never for a request. */
static struct acl_token *acl_find_loading(const struct acl *a, const char *token)
{
    size_t k, len = strlen(token);

    for (k = 0; k < a->n; k++)
        if (a->tok[k].len == len && memcmp(a->tok[k].secret, token, len) == 0)
            return &a->tok[k];
    return NULL;
}

/* Why token is not valid, for err. */
static const char *acl_token_problem(const char *token)
{
    if (!token || !token[0])
        return "is empty";
    if (strnlen(token, LIM_ACL_TOKEN_MAX + 1) > LIM_ACL_TOKEN_MAX)
        return "is longer than " ACL_STR(LIM_ACL_TOKEN_MAX) " bytes";
    return "has a byte that is not printable ASCII (0x21..0x7e; no spaces)";
}

int acl_add(struct acl *a, const char *token, const char *rule, char *err, size_t errlen)
{
    struct acl_token *t = NULL;
    const char *name = NULL;
    char *copy = NULL;
    char **grown = NULL;

    if (!acl_token_valid(token)) {
        errbuf_set(err, errlen, "the token %s", acl_token_problem(token));
        return -1;
    }
    if (!rule || (strcmp(rule, "read") != 0 && strcmp(rule, "write") != 0 &&
                  strncmp(rule, ACL_RULE_SERVICE, strlen(ACL_RULE_SERVICE)) != 0)) {
        errbuf_set(err, errlen, "unknown rule '%.64s' (read, write or service:<name>)",
                   rule ? rule : "");
        return -1;
    }
    if (rule[0] == 's') {
        name = rule + strlen(ACL_RULE_SERVICE);
        if (!regv1_name_valid(name)) {
            errbuf_set(err, errlen,
                       "rule '%.64s': the service name must be 1 to %d of [A-Za-z0-9._-]", rule,
                       LIM_NAME_MAX);
            return -1;
        }
    }
    t = acl_find_loading(a, token);
    if (!t) {
        if (a->n >= LIM_ACL_TOKENS_MAX) {
            errbuf_set(err, errlen, "more than %d tokens", LIM_ACL_TOKENS_MAX);
            return -1;
        }
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 8;
            struct acl_token *tok = calloc(cap, sizeof(*tok));

            if (!tok)
                goto oom;
            if (a->n > 0)
                memcpy(tok, a->tok, a->n * sizeof(*tok));
            if (a->tok)
                acl_wipe(a->tok, a->cap * sizeof(*a->tok));
            free(a->tok);
            a->tok = tok;
            a->cap = cap;
        }
        t = &a->tok[a->n++];
        memset(t, 0, sizeof(*t));
        t->len = strlen(token);
        memcpy(t->secret, token, t->len);
    }
    if (t->nservices + (t->write ? 1 : 0) >= LIM_ACL_RULES_MAX) {
        errbuf_set(err, errlen, "more than %d rules for one token", LIM_ACL_RULES_MAX);
        return -1;
    }
    if (strcmp(rule, "write") == 0)
        t->write = true;
    if (!name)
        return 0; /* "read" is what every token may do */
    copy = strdup(name);
    grown = copy ? realloc(t->services, (t->nservices + 1) * sizeof(*grown)) : NULL;
    if (!grown) {
        free(copy);
        goto oom;
    }
    t->services = grown;
    t->services[t->nservices++] = copy;
    return 0;
oom:
    errbuf_set(err, errlen, "out of memory");
    return -1;
}

int acl_parse(struct acl *a, const char *text, size_t len, const char *what, char *err,
              size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *token;
    json_t *rules;
    size_t nth = 0;
    char why[256];
    int rc = -1;

    if (!doc) {
        errbuf_set(err, errlen, "%s: not valid JSON (line %d: %s)", what, jerr.line, jerr.text);
        return -1;
    }
    if (!json_is_object(doc)) {
        errbuf_set(err, errlen, "%s: must be a JSON object mapping token -> rule or [rules]", what);
        goto cleanup;
    }
    if (json_object_size(doc) == 0) {
        errbuf_set(err, errlen, "%s: holds no token", what);
        goto cleanup;
    }
    if (json_object_size(doc) > LIM_ACL_TOKENS_MAX) {
        errbuf_set(err, errlen, "%s: more than %d tokens", what, LIM_ACL_TOKENS_MAX);
        goto cleanup;
    }
    json_object_foreach (doc, token, rules) {
        size_t i, n = json_is_array(rules) ? json_array_size(rules) : 1;

        nth++;
        if (!json_is_string(rules) && !(json_is_array(rules) && n > 0)) {
            errbuf_set(err, errlen,
                       "%s: token #%zu: the rule must be a string or a non-empty "
                       "array of strings",
                       what, nth);
            goto cleanup;
        }
        for (i = 0; i < n; i++) {
            json_t *r = json_is_array(rules) ? json_array_get(rules, i) : rules;

            if (!json_is_string(r)) {
                errbuf_set(err, errlen, "%s: token #%zu: rule %zu is not a string", what, nth,
                           i + 1);
                goto cleanup;
            }
            if (acl_add(a, token, json_string_value(r), why, sizeof(why)) != 0) {
                errbuf_set(err, errlen, "%s: token #%zu: %s", what, nth, why);
                goto cleanup;
            }
        }
    }
    rc = 0;
cleanup:
    json_decref(doc);
    return rc;
}

int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    int rc = -1;

    if (!f) {
        errbuf_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(LIM_ACL_FILE_MAX + 1);
    if (!buf) {
        errbuf_set(err, errlen, "%s: out of memory", path);
        goto cleanup;
    }
    len = fread(buf, 1, LIM_ACL_FILE_MAX + 1, f);
    if (ferror(f)) {
        errbuf_set(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    if (len > LIM_ACL_FILE_MAX) {
        errbuf_set(err, errlen, "%s: larger than %d bytes", path, LIM_ACL_FILE_MAX);
        goto cleanup;
    }
    rc = acl_parse(a, buf, len, path, err, errlen);
cleanup:
    if (buf)
        acl_wipe(buf, len < LIM_ACL_FILE_MAX + 1 ? len : LIM_ACL_FILE_MAX + 1);
    free(buf);
    fclose(f);
    return rc;
}

void acl_set_anonymous_read(struct acl *a, bool allowed) { a->anonymous_read = allowed; }

size_t acl_count(const struct acl *a) { return a ? a->n : 0; }

/* May the rules of t do action on name? */
static bool acl_token_may(const struct acl_token *t, enum acl_action action, const char *name)
{
    size_t i, n, pre = strlen(ACL_KV_PREFIX);

    if (action == ACL_READ || t->write)
        return true;
    if (!name || (action != ACL_WRITE_SERVICE && action != ACL_WRITE_KV))
        return false;
    for (i = 0; i < t->nservices; i++) {
        if (action == ACL_WRITE_SERVICE && strcmp(t->services[i], name) == 0)
            return true;
        n = strlen(t->services[i]);
        if (action == ACL_WRITE_KV && strncmp(name, ACL_KV_PREFIX, pre) == 0 &&
            strncmp(name + pre, t->services[i], n) == 0 && name[pre + n] == '/')
            return true;
    }
    return false;
}

enum acl_verdict acl_allows(const struct acl *a, const char *token, enum acl_action action,
                            const char *name)
{
    const struct acl_token *t = NULL;

    if (!a)
        return ACL_ALLOWED;
    if (!token || !token[0])
        return action == ACL_READ && a->anonymous_read ? ACL_ALLOWED : ACL_NO_TOKEN;
    t = acl_find(a, token);
    if (!t)
        return ACL_UNKNOWN_TOKEN;
    return acl_token_may(t, action, name) ? ACL_ALLOWED : ACL_DENIED;
}

const char *acl_describe(enum acl_verdict v, enum acl_action action, const char *name, char *buf,
                         size_t cap)
{
    switch (v) {
    case ACL_ALLOWED:
        errbuf_set(buf, cap, "allowed");
        break;
    case ACL_NO_TOKEN:
        errbuf_set(buf, cap,
                   "no token (send one in " ACL_HDR_REGISTRY ", " ACL_HDR_CONSUL " or " ACL_HDR_AUTH
                   ": Bearer)");
        break;
    case ACL_UNKNOWN_TOKEN:
        errbuf_set(buf, cap, "unknown token");
        break;
    case ACL_DENIED:
        if (action == ACL_WRITE_SERVICE && name)
            errbuf_set(buf, cap, "the token may not write service '%.128s'", name);
        else if (action == ACL_WRITE_KV && name)
            errbuf_set(buf, cap, "the token may not write key '%.128s'", name);
        else if (action == ACL_READ)
            errbuf_set(buf, cap, "the token may not read");
        else
            errbuf_set(buf, cap, "the token may not write");
        break;
    }
    return buf;
}

const char *acl_token_from_headers(const char *x_registry, const char *x_consul,
                                   const char *authorization)
{
    const char *p = NULL;

    if (x_registry && x_registry[0])
        return x_registry;
    if (x_consul && x_consul[0])
        return x_consul;
    if (!authorization || strncasecmp(authorization, "Bearer", 6) != 0 ||
        (authorization[6] != ' ' && authorization[6] != '\t'))
        return NULL;
    p = authorization + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p ? p : NULL;
}

int acl_token_read_file(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    char line[LIM_ACL_TOKEN_MAX + 3];
    FILE *f = NULL;
    size_t len;
    int rc = -1;

    if (cap < LIM_ACL_TOKEN_MAX + 1) {
        errbuf_set(err, errlen, "%s: no room for a token", path);
        return -1;
    }
    f = fopen(path, "r");
    if (!f) {
        errbuf_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(line, sizeof(line), f)) {
        errbuf_set(err, errlen, "%s: %s", path, ferror(f) ? strerror(errno) : "is empty");
        goto cleanup;
    }
    len = strlen(line);
    if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
        errbuf_set(err, errlen, "%s: the token is longer than %d bytes", path, LIM_ACL_TOKEN_MAX);
        goto cleanup;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
        line[--len] = '\0';
    if (!acl_token_valid(line)) {
        errbuf_set(err, errlen, "%s: the token on its first line %s", path,
                   acl_token_problem(line));
        goto cleanup;
    }
    memcpy(out, line, len + 1);
    rc = 0;
cleanup:
    acl_wipe(line, sizeof(line));
    fclose(f);
    return rc;
}

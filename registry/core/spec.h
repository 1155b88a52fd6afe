/* spec.h: a registration as the registry core takes it, typed: the fixed
 * fields, the tags as strings and the metadata as key/value string pairs, in
 * the order they came. No wire format here: registry/api/spec_json.c parses
 * and validates a JSON body into this shape (every input rule lives there),
 * and the core trusts what it is given. */
#ifndef REG_CORE_SPEC_H
#define REG_CORE_SPEC_H

#include "check.h"
#include "core/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REG_TYPE_DEFAULT "service"

/* What a check probes. */
enum reg_check_kind { REG_CHECK_TTL = 0, REG_CHECK_HTTP = 1, REG_CHECK_TCP = 2 };

/* One check of a registration, as given (the rules are spec_json.c's). */
struct reg_check_spec {
    char id[LIM_CHECK_ID_MAX + 1]; /* "": "<instance-id>:<n>", n its place from 1 */
    enum reg_check_kind kind;
    char target[LIM_CHECK_TARGET_MAX + 1]; /* http: the URL; tcp: HOST:PORT; ttl: "" */
    int64_t interval_ms, timeout_ms;       /* http and tcp */
    int64_t deregister_after_ms;           /* critical this long: removed; 0: never
                                              (ttl: the registry's rule) */
    struct chk_policy policy;
    enum reg_health status; /* the status it starts with (http and tcp) */
};

struct reg_spec {
    bool has_id;             /* the body named an id */
    char id[LIM_ID_MAX + 1]; /* "<name>-<uuid>" when has_id */
    char name[LIM_NAME_MAX + 1];
    char host[LIM_HOST_MAX + 1];
    char type[LIM_TYPE_MAX + 1];       /* REG_TYPE_DEFAULT when absent */
    int port;                          /* 1..65535 */
    int64_t ttl_ms;                    /* LIM_TTL_MIN_MS..LIM_TTL_MAX seconds; 0: no TTL check */
    size_t tag_count;                  /* <= LIM_TAGS_MAX */
    size_t meta_count;                 /* <= LIM_META_MAX */
    size_t tag_off[LIM_TAGS_MAX];      /* offsets into strs */
    size_t meta_off[2 * LIM_META_MAX]; /* key, value offsets into strs */
    char *strs;                        /* owned: the tag and metadata strings, NUL-terminated */
    long long critical_since_ms; /* stored documents only: critical since (Unix ms); 0 passing */
    /* The checks given beside the TTL one of ttl_ms (a TTL check given
     * among them sets ttl_ms and is listed here too, for its id and
     * rules). ttl_ms 0:
     * the instance has no TTL check. */
    size_t check_count; /* <= LIM_CHECKS_MAX */
    /* stored documents only: maintenance on since maint_since_ms, and why */
    bool maint;
    long long maint_since_ms;
    char maint_reason[LIM_MAINT_REASON_MAX + 1];
    size_t strs_len, strs_cap;
    /* Last, and not zeroed by reg_spec_init (about 10 KiB, set up to
     * check_count by whoever adds a check). */
    struct reg_check_spec checks[LIM_CHECKS_MAX];
};

/* Zero spec and set the defaults (type REG_TYPE_DEFAULT, ttl
 * LIM_TTL_DEFAULT seconds). Release with reg_spec_clear. */
void reg_spec_init(struct reg_spec *spec);

/* Append a tag (len bytes of s, copied; no NUL inside). 0, or -1 when out
 * of memory or LIM_TAGS_MAX tags are there (nothing changed). */
int reg_spec_add_tag(struct reg_spec *spec, const char *s, size_t len)
    __attribute__((warn_unused_result));

/* Append a metadata pair (copied). 0, or -1 when out of memory or
 * LIM_META_MAX pairs are there (nothing changed). */
int reg_spec_add_meta(struct reg_spec *spec, const char *key, size_t key_len, const char *value,
                      size_t value_len) __attribute__((warn_unused_result));

/* The i-th tag, metadata key and value (i below the count); borrowed from
 * spec, valid until it changes or is cleared. */
const char *reg_spec_tag(const struct reg_spec *spec, size_t i);
const char *reg_spec_meta_key(const struct reg_spec *spec, size_t i);
const char *reg_spec_meta_value(const struct reg_spec *spec, size_t i);

/* Free what spec owns and leave it empty (counts 0). Safe on a zeroed or
 * cleared spec. */
void reg_spec_clear(struct reg_spec *spec);

#endif

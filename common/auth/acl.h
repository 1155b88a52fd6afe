/* acl.h: access tokens, Consul-ACL-like but small. A table of secret
 * tokens, each with rules: "read" (read everything), "write" (read and
 * write everything), "service:<name>" (read everything, write the
 * instances named <name> and the keys under config/<name>/). Loaded from
 * a JSON file mapping token -> rule or [rules], or built by hand (one peer
 * token). The lookup of a token compares it with every stored token in
 * constant time, so timing says nothing about which bytes matched. No
 * HTTP here: the caller hands in header values (acl_token_from_headers). */
#ifndef SVC_AUTH_ACL_H
#define SVC_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>

struct acl;

/* What a request wants to do. */
enum acl_action {
    ACL_READ,          /* any read */
    ACL_WRITE_SERVICE, /* write the instances of service `name` */
    ACL_WRITE_KV,      /* write key `name` (config/<service>/... for a service rule) */
    ACL_WRITE_ANY,     /* a write that belongs to no one service */
};

/* The answer of acl_allows: allowed, or why not. */
enum acl_verdict {
    ACL_ALLOWED = 0,
    ACL_NO_TOKEN,      /* no token given, and anonymous callers may not */
    ACL_UNKNOWN_TOKEN, /* a token given that is not in the table */
    ACL_DENIED,        /* a known token without the right */
};

/* The header names a token may come in, in order of precedence. */
#define ACL_HDR_REGISTRY "X-Registry-Token"
#define ACL_HDR_CONSUL   "X-Consul-Token"
#define ACL_HDR_AUTH     "Authorization" /* "Bearer <token>" */

/* An empty table (every token unknown, anonymous callers may nothing).
 * Caller frees with acl_free. NULL when out of memory. */
struct acl *acl_new(void) __attribute__((warn_unused_result));

/* Free; accepts NULL. The stored tokens are wiped first. */
void acl_free(struct acl *a);

/* Add token (copied) with one rule ("read", "write" or "service:<name>").
 * Adding a token already present adds the rule to it. 0, or -1 with err
 * (the token is never quoted in it): token invalid (acl_token_valid), rule
 * unknown or its service name invalid, LIM_ACL_TOKENS_MAX tokens or
 * LIM_ACL_RULES_MAX rules of one token already, out of memory. */
int acl_add(struct acl *a, const char *token, const char *rule, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Add every token of the JSON text (len bytes): an object mapping token ->
 * rule string or non-empty array of rule strings. what names the source in
 * err ("FILE: ..."). 0, or -1 with err (the table may hold some of the
 * tokens then: free it). */
int acl_parse(struct acl *a, const char *text, size_t len, const char *what, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* acl_parse of the file at path (at most LIM_ACL_FILE_MAX bytes). 0, or -1
 * with err naming the file and what is wrong. */
int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether a caller without a token may read (--acl-anonymous read). */
void acl_set_anonymous_read(struct acl *a, bool allowed);

/* Number of tokens in the table. */
size_t acl_count(const struct acl *a);

/* May the caller presenting token (NULL: none; borrowed) do action on name
 * (a service name for ACL_WRITE_SERVICE, a key for ACL_WRITE_KV, else
 * ignored; borrowed)? A given token that is unknown is refused even for
 * what anonymous callers may do (as Consul does). */
enum acl_verdict acl_allows(const struct acl *a, const char *token, enum acl_action action,
                            const char *name);

/* The reason of a refusal for the error message, never quoting the token:
 * "no token ...", "unknown token", "the token may not write service 'x'".
 * Writes into buf (cap bytes), returns buf. */
const char *acl_describe(enum acl_verdict v, enum acl_action action, const char *name, char *buf,
                         size_t cap);

/* The token of a request from its header values (each NULL when absent;
 * borrowed): the first non-empty of X-Registry-Token, X-Consul-Token and
 * the credentials of "Authorization: Bearer <token>" (scheme in any case).
 * Returns a pointer into one of them, or NULL for none. */
const char *acl_token_from_headers(const char *x_registry, const char *x_consul,
                                   const char *authorization);

/* A token may be stored and sent in a header: 1..LIM_ACL_TOKEN_MAX bytes,
 * each printable ASCII other than space (0x21..0x7e). */
bool acl_token_valid(const char *token);

/* Read a token from the first line of the file at path into out (cap >=
 * LIM_ACL_TOKEN_MAX + 1), trailing whitespace (and the newline) removed.
 * 0, or -1 with err naming the file (never the token): unreadable, empty,
 * or not a valid token. */
int acl_token_read_file(const char *path, char *out, size_t cap, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif

/* codec.h: the registry's native JSON for instances, the only code that
 * knows it: the stored document of a registration (with its schema version)
 * and the instance object of the API's answers. Answers are written from a
 * per-instance cache of the encoded registration part (kept in the core's
 * opaque cache slot, dropped with the instance, which a change replaces), so
 * a discovery answer costs one copy plus the live fields. */
#ifndef REG_API_CODEC_H
#define REG_API_CODEC_H

#include "../core/catalog.h"

#include <stddef.h>

struct evbuffer;

/* Schema version of the stored documents this registry writes, as the first
 * member "v". A document without "v" is version 0 (written before the
 * member existed; the same fields), and loads the same way. A newer one is
 * refused, so an older registry never rewrites what it does not know. */
#define REGC_DOC_VERSION 1

/* The codec the core is given (reg_options.codec). */
extern const struct reg_codec regc_codec;

/* The stored document of spec (borrowed) under id (borrowed):
 * {"v":1,"id","name","host","port","type","tags","metadata","ttl"}, with
 * "critical_since" last when spec->critical_since_ms is above 0. Returns
 * the bytes (NUL-terminated, caller frees) and their length in *len, or NULL
 * when out of memory. */
char *regc_doc_new(const char *id, const struct reg_spec *spec, size_t *len)
    __attribute__((warn_unused_result));

/* The stored document of the instance in (borrowed) with its health: the
 * same as regc_doc_new for its registration, plus "critical_since" (Unix
 * ms) last when it is critical. Caller frees; NULL when out of memory. */
char *regc_doc_of_instance(const struct reg_instance *in, size_t *len)
    __attribute__((warn_unused_result));

/* Parse a stored document (borrowed) into spec by the registration rules,
 * after checking its version; "critical_since" (a positive integer) goes
 * to spec->critical_since_ms, anything else there reads as passing. 0, or -1 with err (spec then owns nothing). */
int regc_doc_parse(const char *doc, size_t len, struct reg_spec *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Append the instance's JSON object to out:
 * {"id","name","host","port","type","tags","metadata","ttl","last_heartbeat","health",
 * "checks"} and "maintenance":{"reason","since"} last when it is on.
 * Fills the instance's cache slot on first use. 0, or -1 out of memory. */
int regc_write_instance(const struct reg_instance *in, struct evbuffer *out)
    __attribute__((warn_unused_result));

/* regc_write_instance without filling the instance's cache when it has
 * none (the change events write every registered instance once; keeping a
 * cache for each would hold their JSON in memory whether anyone reads the
 * list or not). 0, or -1 when out of memory. */
int regc_write_instance_once(const struct reg_instance *in, struct evbuffer *out)
    __attribute__((warn_unused_result));

/* The API's word for a health: "passing", "warning", "critical". */
const char *regc_health_name(enum reg_health h);

/* Append one check's state {"id","type","status","output","last_change"}
 * (last_change in Unix seconds with milliseconds). 0, or -1 out of memory. */
int regc_write_check(const struct reg_check_view *c, struct evbuffer *out)
    __attribute__((warn_unused_result));

/* Append the instance's checks as a JSON array: its TTL check, the others
 * given, and its maintenance as a critical check of type "maintenance"
 * with the reason as output. 0, or -1 out of memory. */
int regc_write_checks(const struct reg_instance *in, struct evbuffer *out)
    __attribute__((warn_unused_result));

#endif

/* spec_json.h: a registration body, parsed from its JSON and validated into
 * the core's typed struct reg_spec. Everything the registry stores about an
 * instance, except its health, passes through reg_spec_parse, so one
 * function holds every input rule (and every error text the API answers). */
#ifndef REG_API_SPEC_JSON_H
#define REG_API_SPEC_JSON_H

#include "../core/spec.h"

#include <jansson.h>
#include <stddef.h>

/* Validate body (borrowed) and fill spec. Unknown members are ignored so
 * newer clients work with this registry. Returns 0, or -1 with err saying
 * which member is wrong and why; spec then owns nothing. On success the
 * caller releases spec with reg_spec_clear. */
int reg_spec_parse(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Same, from raw bytes (the fuzzing entry point, and stored documents). */
int reg_spec_parse_text(const char *text, size_t len, struct reg_spec *spec, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/* One check object c (borrowed) by the same rules as a member of
 * "checks" (a ttl check's ttl in cs->interval_ms): 0, or -1 with err
 * naming its member as "check.<member>". */
int reg_check_parse(const json_t *c, struct reg_check_spec *cs, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif

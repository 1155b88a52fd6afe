/* spec.h: a registration request, parsed and validated from its JSON body.
 * Everything the registry stores about an instance, except its health,
 * passes through reg_spec_parse, so one function holds every input rule. */
#ifndef REG_CORE_SPEC_H
#define REG_CORE_SPEC_H

#include "core/limits.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define REG_TYPE_DEFAULT "service"

struct reg_spec {
    bool has_id;             /* the body named an id */
    char id[LIM_ID_MAX + 1]; /* "<name>-<uuid>" when has_id */
    char name[LIM_NAME_MAX + 1];
    char host[LIM_HOST_MAX + 1];
    char type[LIM_TYPE_MAX + 1]; /* REG_TYPE_DEFAULT when absent */
    int port;                    /* 1..65535 */
    int ttl;                     /* seconds, LIM_TTL_MIN..LIM_TTL_MAX */
    json_t *tags;                /* owned reference: array of strings */
    json_t *metadata;            /* owned reference: object of strings */
};

/* Validate body (borrowed) and fill spec. Unknown members are ignored so
 * newer clients work with this registry. Returns 0, or -1 with err saying
 * which member is wrong and why; spec then owns nothing. On success the
 * caller releases spec with reg_spec_clear. */
int reg_spec_parse(const json_t *body, struct reg_spec *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Same, from raw bytes (the fuzzing entry point). */
int reg_spec_parse_text(const char *text, size_t len, struct reg_spec *spec, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/* Release the references spec holds. Safe on a zeroed or cleared spec. */
void reg_spec_clear(struct reg_spec *spec);

#endif

/* spec.c: the typed registration (see spec.h): its strings kept in one
 * growing buffer, addressed by offsets so that growing it moves nothing the
 * caller holds but the pointers returned before. */
#include "spec.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void reg_spec_init(struct reg_spec *spec)
{
    /* the checks past check_count are never read: a registration does not
     * pay for zeroing them */
    memset(spec, 0, offsetof(struct reg_spec, checks));
    strcpy(spec->type, REG_TYPE_DEFAULT);
    spec->ttl_ms = (int64_t)LIM_TTL_DEFAULT * 1000;
}

/* Append len bytes of s and a NUL to spec's strings; *off gets where they
 * start. 0, or -1 when out of memory (nothing changed). */
static int reg_spec_push(struct reg_spec *spec, const char *s, size_t len, size_t *off)
{
    size_t need = spec->strs_len + len + 1;

    if (need > spec->strs_cap) {
        size_t cap = spec->strs_cap ? spec->strs_cap : 256;
        char *strs = NULL;

        while (cap < need)
            cap *= 2;
        strs = realloc(spec->strs, cap);
        if (!strs)
            return -1;
        spec->strs = strs;
        spec->strs_cap = cap;
    }
    *off = spec->strs_len;
    memcpy(spec->strs + spec->strs_len, s, len);
    spec->strs[spec->strs_len + len] = '\0';
    spec->strs_len = need;
    return 0;
}

int reg_spec_add_tag(struct reg_spec *spec, const char *s, size_t len)
{
    if (spec->tag_count >= LIM_TAGS_MAX)
        return -1;
    if (reg_spec_push(spec, s, len, &spec->tag_off[spec->tag_count]) != 0)
        return -1;
    spec->tag_count++;
    return 0;
}

int reg_spec_add_meta(struct reg_spec *spec, const char *key, size_t key_len, const char *value,
                      size_t value_len)
{
    size_t before = spec->strs_len;
    size_t *off = NULL;

    if (spec->meta_count >= LIM_META_MAX)
        return -1;
    off = &spec->meta_off[2 * spec->meta_count];
    if (reg_spec_push(spec, key, key_len, &off[0]) != 0)
        return -1;
    if (reg_spec_push(spec, value, value_len, &off[1]) != 0) {
        spec->strs_len = before;
        return -1;
    }
    spec->meta_count++;
    return 0;
}

const char *reg_spec_tag(const struct reg_spec *spec, size_t i)
{
    return spec->strs + spec->tag_off[i];
}

const char *reg_spec_meta_key(const struct reg_spec *spec, size_t i)
{
    return spec->strs + spec->meta_off[2 * i];
}

const char *reg_spec_meta_value(const struct reg_spec *spec, size_t i)
{
    return spec->strs + spec->meta_off[2 * i + 1];
}

void reg_spec_clear(struct reg_spec *spec)
{
    free(spec->strs);
    spec->strs = NULL;
    spec->strs_len = spec->strs_cap = 0;
    spec->tag_count = spec->meta_count = 0;
}

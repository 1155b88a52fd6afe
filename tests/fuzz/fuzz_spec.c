/* fuzz_spec.c: libFuzzer harness for the registration body parser: any
 * bytes must be either accepted (and released) or refused with a message,
 * never crash or leak. An accepted body must also survive the stored
 * document: encoded by registry/api/codec.c and parsed back, it gives the
 * same typed registration (abort otherwise). */
#include "registry/api/codec.h"
#include "registry/api/spec_json.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort unless a and b hold the same registration. */
static void same_or_abort(const struct reg_spec *a, const struct reg_spec *b)
{
    size_t i;

    if (strcmp(a->name, b->name) != 0 || strcmp(a->host, b->host) != 0 ||
        strcmp(a->type, b->type) != 0 || a->port != b->port || a->ttl_ms != b->ttl_ms ||
        a->tag_count != b->tag_count || a->meta_count != b->meta_count)
        abort();
    for (i = 0; i < a->tag_count; i++)
        if (strcmp(reg_spec_tag(a, i), reg_spec_tag(b, i)) != 0)
            abort();
    for (i = 0; i < a->meta_count; i++)
        if (strcmp(reg_spec_meta_key(a, i), reg_spec_meta_key(b, i)) != 0 ||
            strcmp(reg_spec_meta_value(a, i), reg_spec_meta_value(b, i)) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reg_spec spec, back;
    char err[512], id[LIM_ID_MAX + 1];
    char *doc = NULL;
    size_t len = 0;

    if (reg_spec_parse_text((const char *)data, size, &spec, err, sizeof(err)) != 0)
        return 0;
    if (spec.has_id)
        snprintf(id, sizeof(id), "%s", spec.id);
    else
        snprintf(id, sizeof(id), "%s-00000000-0000-4000-8000-000000000000", spec.name);
    doc = regc_doc_new(id, &spec, &len);
    if (doc) {
        if (regc_doc_parse(doc, len, &back, err, sizeof(err)) != 0 || strcmp(back.id, id) != 0)
            abort();
        same_or_abort(&spec, &back);
        reg_spec_clear(&back);
        free(doc);
    }
    reg_spec_clear(&spec);
    return 0;
}

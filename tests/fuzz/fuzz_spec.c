/* fuzz_spec.c: libFuzzer harness for the registration body parser: any
 * bytes must be either accepted (and released) or refused with a message,
 * never crash or leak. */
#include "registry/api/spec_json.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reg_spec spec;
    char err[512];

    if (reg_spec_parse_text((const char *)data, size, &spec, err, sizeof(err)) == 0)
        reg_spec_clear(&spec);
    return 0;
}

/* jsonerr.c: jansson's refusals in the caller's terms (see jsonerr.h). */
#include "codec/jsonerr.h"

#include "core/errbuf.h"

#include <string.h>

const char *jerr_describe(const json_error_t *e, const char *text, size_t len, const char *what,
                          char *buf, size_t buflen)
{
    int line = e->line, col = e->column;

    if (len == 0) {
        errbuf_set(buf, buflen, "%s is empty; expected JSON", what);
        return buf;
    }
    /* a raw NUL byte is a "control character" or an early end to jansson */
    if (memchr(text, '\0', len)) {
        errbuf_set(buf, buflen, "%s holds a NUL byte", what);
        return buf;
    }
    if (strncmp(e->text, "'[' or '{' expected", 19) == 0) {
        /* a caller without JSON_DECODE_ANY was given a scalar */
        errbuf_set(buf, buflen, "%s must be a JSON object or array", what);
        return buf;
    }
    switch (json_error_code(e)) {
    case json_error_null_character:
    case json_error_null_byte_in_key:
        errbuf_set(buf, buflen, "%s holds a NUL byte (\\u0000) at line %d, column %d", what, line,
                   col);
        break;
    case json_error_invalid_utf8:
        errbuf_set(buf, buflen, "%s is not valid UTF-8 (line %d, column %d)", what, line, col);
        break;
    case json_error_duplicate_key:
        errbuf_set(buf, buflen, "%s has a duplicate key in an object (line %d, column %d)", what,
                   line, col);
        break;
    case json_error_end_of_input_expected:
        errbuf_set(buf, buflen, "%s is not valid JSON: text after the value (line %d, column %d)",
                   what, line, col);
        break;
    case json_error_premature_end_of_input:
        errbuf_set(buf, buflen, "%s is not valid JSON: it ends too early (line %d, column %d)",
                   what, line, col);
        break;
    case json_error_stack_overflow:
        errbuf_set(buf, buflen, "%s nests arrays or objects too deeply (line %d, column %d)", what,
                   line, col);
        break;
    case json_error_numeric_overflow:
        errbuf_set(buf, buflen, "%s holds a number out of range (line %d, column %d)", what, line,
                   col);
        break;
    case json_error_out_of_memory:
        errbuf_set(buf, buflen, "out of memory reading %s", what);
        break;
    case json_error_wrong_type:
        errbuf_set(buf, buflen, "%s must be a JSON object or array", what);
        break;
    default:
        errbuf_set(buf, buflen, "%s is not valid JSON (line %d, column %d)", what, line, col);
        break;
    }
    return buf;
}

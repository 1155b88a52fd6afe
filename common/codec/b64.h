/* b64.h: standard base64 (RFC 4648, with padding), the encoding of KV
 * values in the registry's store and in Consul's KV answers. No I/O. */
#ifndef SVC_CODEC_B64_H
#define SVC_CODEC_B64_H

#include <stddef.h>

/* Bytes b64_encode writes for n input bytes, with its NUL. */
#define B64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4 + 1)

/* Encode n bytes of src into dst (B64_ENCODED_LEN(n) bytes), NUL-ended.
 * Returns the length written, without the NUL. */
size_t b64_encode(const unsigned char *src, size_t n, char *dst);

/* Decode n characters of src (padded; no white space) into dst, which has
 * room for n / 4 * 3 bytes. 0 with the length in *out_len, or -1 when src
 * is not base64. */
int b64_decode(const char *src, size_t n, unsigned char *dst, size_t *out_len)
    __attribute__((warn_unused_result));

#endif

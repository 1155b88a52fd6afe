/* registry_v1.c: the input rules of the registry's native API that both
 * sides apply (see registry_v1.h): the registry to what it is sent, a
 * service to what it is about to send (its --advertise host). */
#include "proto/registry_v1.h"

#include "core/limits.h"

#include <arpa/inet.h>
#include <string.h>

/* A name or type: [A-Za-z0-9._-]{1,128}. */
bool regv1_name_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];

        if (n >= LIM_NAME_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

/* Whether s (non-empty) is only dots: "." and ".." pass the alphabet of
 * names but read as path steps (finding: the name ".." was accepted). */
bool regv1_only_dots(const char *s) { return s[0] != '\0' && strspn(s, ".") == strlen(s); }

/* Whether every label of the dotted host s is made of digits only (a
 * trailing dot aside): such a host reads as an IPv4 address, so it must be
 * one ("999.1.1.1" and "1.2.3" are not; no DNS name is all digits either,
 * RFC 1123 section 2.1). */
static bool regv1_host_numeric(const char *s)
{
    size_t len = strlen(s);

    if (len > 0 && s[len - 1] == '.')
        len--;
    return len > 0 && strspn(s, "0123456789.") >= len;
}

/* One DNS label: 1..63 of letters, digits, '-' or '_', not starting or
 * ending with '-'. Underscores appear in container and SRV names. */
static bool regv1_label_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* A DNS name, IPv4 or IPv6 literal of at most LIM_HOST_MAX characters. */
bool regv1_host_valid(const char *s)
{
    unsigned char addr[16];
    size_t len = strlen(s);
    const char *label = s;

    if (len == 0 || len > LIM_HOST_MAX)
        return false;
    if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1)
        return true;
    if (regv1_host_numeric(s))
        return false; /* looks like IPv4 but is not a valid address */
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);

        if (!regv1_label_valid(label, n))
            return false;
        if (!dot)
            return true;
        label = dot + 1;
        if (*label == '\0')
            return true; /* a trailing dot: fully qualified */
    }
}

/* cli.c: the registry call every svcctl command makes, and the exit code
 * and error line its answer means (see cli.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "proto/registry_v1.h"

/* The why of a refused call: the "error" of a JSON body, else the body's
 * first line, else the status. */
static void sc_why(const struct sch_resp *r, const char *what, char *err, size_t errlen)
{
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(doc, REGV1_F_ERROR));

    if (msg)
        snprintf(err, errlen, "%s: %s", what, msg);
    else if (r->len && r->body[0] != '\n')
        snprintf(err, errlen, "%s: HTTP %ld: %.*s", what, r->status, (int)strcspn(r->body, "\r\n"),
                 r->body);
    else
        snprintf(err, errlen, "%s: HTTP %ld", what, r->status);
    json_decref(doc);
}

int sc_registry(const struct sc_ctx *c, const char *what, const char *method, const char *path,
                const char *body, size_t len, const char *ctype, struct sch_resp *out, char *err,
                size_t errlen)
{
    char url[4096], why[512];

    if ((size_t)snprintf(url, sizeof(url), "%s%s", c->registry, path) >= sizeof(url)) {
        snprintf(err, errlen, "%s: the URL is too long", what);
        return SC_USAGE;
    }
    if (sch_call(&c->reg, method, url, body, len, body && !ctype ? "application/json" : ctype, NULL,
                 out, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: registry %s unreachable: %s", what, c->registry, why);
        return SC_UNREACHABLE;
    }
    if (out->status >= 200 && out->status < 300)
        return SC_OK;
    sc_why(out, what, err, errlen);
    return out->status >= 400 && out->status < 500 ? SC_FAIL : SC_UNREACHABLE;
}

int sc_registry_json(const struct sc_ctx *c, const char *what, const char *method, const char *path,
                     const char *body, json_t **doc, struct sch_resp *raw, char *err, size_t errlen)
{
    struct sch_resp r;
    json_error_t jerr;
    int rc;

    *doc = NULL;
    rc = sc_registry(c, what, method, path, body, body ? strlen(body) : 0, NULL, &r, err, errlen);
    if (rc == SC_OK) {
        *doc = json_loadb(r.body, r.len, 0, &jerr);
        if (!*doc) {
            snprintf(err, errlen, "%s: the registry's answer is not JSON: %s", what, jerr.text);
            rc = SC_UNREACHABLE;
        }
    }
    if (raw && rc == SC_OK)
        *raw = r;
    else
        sch_resp_clear(&r);
    return rc;
}

void sc_print_raw(const char *body, size_t len)
{
    fwrite(body, 1, len, stdout);
    if (len == 0 || body[len - 1] != '\n')
        fputc('\n', stdout);
}

const char *sc_health(const json_t *inst)
{
    const char *h = json_string_value(json_object_get(inst, REGV1_F_HEALTH));

    return h ? h : "-";
}

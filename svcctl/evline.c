/* evline.c: the event lines of svcctl watch (see evline.h). */
#include "evline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/registry_v1.h"

/* A member of o that is a string, else "-" (borrowed from o). */
static const char *evl_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s && *s ? s : "-";
}

char *evl_line(const char *sse_event, const json_t *ev, time_t now)
{
    const json_t *data = json_object_get(ev, "data");
    const json_t *info = json_object_get(data, "service_info");
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *ts = json_object_get(ev, "timestamp");
    time_t when = json_is_integer(ts) ? (time_t)json_integer_value(ts) : now;
    char stamp[32] = "-", *line = NULL;
    struct tm tm;
    int n;

    if (!type)
        type = sse_event && *sse_event ? sse_event : "-";
    if (gmtime_r(&when, &tm))
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (strcmp(type, "reset") == 0) {
        n = asprintf(&line,
                     "%s %-11s - - the history passed this watch: re-read the state "
                     "(index %" JSON_INTEGER_FORMAT ")",
                     stamp, type, json_integer_value(json_object_get(ev, "index")));
    } else if (strcmp(type, "kv") == 0) {
        n = asprintf(&line, "%s %-11s - %s %s", stamp, type, evl_str(data, "key"),
                     evl_str(data, "op"));
    } else if (strcmp(type, "health") == 0) {
        n = asprintf(&line, "%s %-11s %s %s %s check %s %s -> %s", stamp, type,
                     evl_str(info, REGV1_F_NAME), evl_str(data, "service_id"),
                     evl_str(info, REGV1_F_HEALTH), evl_str(data, "check_id"),
                     evl_str(data, "previous"), evl_str(data, "status"));
    } else if (strcmp(type, "maintenance") == 0) {
        const json_t *m = json_object_get(info, REGV1_F_MAINT);
        int on = json_is_true(json_object_get(data, "enable"));

        n = asprintf(&line, "%s %-11s %s %s %s maintenance %s%s%s", stamp, type,
                     evl_str(info, REGV1_F_NAME), evl_str(data, "service_id"),
                     evl_str(info, REGV1_F_HEALTH), on ? "on" : "off", on && m ? ": " : "",
                     on && m ? evl_str(m, "reason") : "");
    } else {
        n = asprintf(&line, "%s %-11s %s %s %s", stamp, type, evl_str(info, REGV1_F_NAME),
                     evl_str(data, "service_id"), evl_str(info, REGV1_F_HEALTH));
    }
    if (n < 0)
        return NULL;
    for (char *p = line; *p; p++) /* one event, one line */
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return line;
}

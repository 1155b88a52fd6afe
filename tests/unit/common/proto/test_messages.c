/* test_messages.c: unit tests of the /logging wire contract
 * (common/proto/messages.h): pages and lists written by the encoder read
 * back by the decoder (round trips, escaping, pieces larger than one
 * chunk), the batch results against jansson's reading, and what the
 * decoders refuse. */
#include "proto/messages.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"

/* The text of buf, NUL-terminated (caller frees). */
static char *buf_text(struct evbuffer *buf, size_t *len)
{
    size_t n = evbuffer_get_length(buf);
    char *s = malloc(n + 1);

    assert_non_null(s);
    evbuffer_copyout(buf, s, n);
    s[n] = '\0';
    *len = n;
    return s;
}

struct seen {
    char uuid[8][40];
    char msg[8][128];
    size_t len[8];
    int64_t ts[8];
    size_t n;
};

static int collect(const struct pm_record *rec, size_t index, void *arg)
{
    struct seen *s = arg;

    assert_int_equal(index, s->n);
    snprintf(s->uuid[s->n], sizeof(s->uuid[0]), "%s", rec->uuid);
    memcpy(s->msg[s->n], rec->msg, rec->len);
    s->len[s->n] = rec->len;
    s->ts[s->n] = rec->ts;
    s->n++;
    return 0;
}

static void test_page_round_trip(void **state)
{
    static const char tricky[] = "quote \" back \\ nl \n tab \t ctl \x01 caf\xc3\xa9 nul";
    struct pm_record recs[2] = {{U1, "plain", 5, 1700000000000LL},
                                {U2, tricky, sizeof(tricky) - 1, 0}};
    struct evbuffer *buf = evbuffer_new();
    struct pm_out o;
    struct pm_page page;
    struct seen seen;
    char err[128], *text;
    size_t len;

    (void)state;
    pm_out_init(&o, buf);
    assert_int_equal(pm_page_begin(&o, "e-1"), 0);
    assert_true(pm_record_put(&o, &recs[0], false) > 0);
    assert_true(pm_record_put(&o, &recs[1], true) > 0);
    assert_int_equal(pm_page_end(&o, 42, true), 0);
    assert_int_equal(pm_out_finish(&o), 0);
    text = buf_text(buf, &len);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(pm_page_decode(text, len, collect, &seen, &page, err, sizeof(err)), 0);
    assert_string_equal(page.epoch, "e-1");
    assert_int_equal(page.next, 42);
    assert_true(page.more);
    assert_int_equal(page.count, 2);
    assert_string_equal(seen.uuid[0], U1);
    assert_int_equal(seen.ts[0], 1700000000000LL);
    assert_int_equal(seen.len[1], sizeof(tricky) - 1);
    assert_memory_equal(seen.msg[1], tricky, sizeof(tricky) - 1);
    /* the text is what jansson itself writes for the same page */
    {
        json_t *root = json_loads(text, 0, NULL);
        char *again = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);

        assert_non_null(root);
        assert_string_equal(again, text);
        free(again);
        json_decref(root);
    }
    free(text);
    evbuffer_free(buf);
}

static void test_list_in_many_pieces(void **state)
{
    struct evbuffer *buf = evbuffer_new();
    char *big = malloc(300 * 1024), *text;
    struct pm_record r = {U1, NULL, 0, 7};
    struct pm_out o;
    json_t *root;
    size_t len, i;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', 300 * 1024);
    r.msg = big;
    r.len = 300 * 1024; /* longer than one piece */
    pm_out_init(&o, buf);
    assert_int_equal(pm_list_begin(&o), 0);
    for (i = 0; i < 5; i++)
        assert_true(pm_record_put(&o, &r, i > 0) > r.len);
    assert_int_equal(pm_list_end(&o), 0);
    assert_int_equal(pm_out_finish(&o), 0);
    text = buf_text(buf, &len);
    root = json_loadb(text, len, 0, NULL);
    assert_non_null(root);
    assert_true(json_is_true(json_object_get(root, "success")));
    assert_int_equal(json_array_size(json_object_get(root, "messages")), 5);
    assert_int_equal(json_string_length(json_object_get(
                         json_array_get(json_object_get(root, "messages"), 4), "msg")),
                     300 * 1024);
    json_decref(root);
    free(text);
    free(big);
    evbuffer_free(buf); /* the pieces are unmapped with it */
}

static int results_seen(const struct pm_result *res, size_t index, void *arg)
{
    int *statuses = arg;

    statuses[index] = res->status * (res->duplicate ? -1 : 1);
    return 0;
}

static void test_results_round_trip(void **state)
{
    char body[3 * PM_RESULT_MAX + 64], err[128];
    int statuses[3] = {0, 0, 0};
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(body, sizeof(body), "{\"success\":true,\"results\":[");
    n += pm_result_put(body + n, false, U1, 201);
    n += pm_result_put(body + n, true, U2, 200);
    n +=
        (size_t)snprintf(body + n, sizeof(body) - n,
                         ",{\"uuid\":null,\"status\":400,\"duplicate\":false,\"error\":\"bad\"}]}");
    assert_int_equal(pm_results_decode(body, n, results_seen, statuses, err, sizeof(err)), 3);
    assert_int_equal(statuses[0], 201);
    assert_int_equal(statuses[1], -200);
    assert_int_equal(statuses[2], 400);
}

static void test_decoders_refuse_other_bodies(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"success\":true,\"messages\":[]}",
        "{\"epoch\":\"e\",\"messages\":{},\"next\":0,\"more\":false}",
        "{\"epoch\":\"e\",\"messages\":[],\"next\":-1,\"more\":false}",
        "{\"epoch\":\"e\",\"messages\":[],\"next\":0,\"more\":1}",
    };
    struct pm_page page;
    char err[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            pm_page_decode(bad[i], strlen(bad[i]), NULL, NULL, &page, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(pm_results_decode("{\"success\":true}", 16, NULL, NULL, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_round_trip),
        cmocka_unit_test(test_list_in_many_pieces),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_decoders_refuse_other_bodies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

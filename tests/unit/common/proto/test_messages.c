/* test_messages.c: unit tests of the /logging wire contract
 * (common/proto/messages.h): pages and lists written by the encoder read
 * back by the decoder (round trips, escaping, pieces larger than one
 * chunk), the batch results against jansson's reading (the fast reading
 * through a pm_reader and jansson's give the same results for every body),
 * and what the decoders refuse. */
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
    char trace[8][33]; /* "" when the record had none */
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
    if (rec->trace)
        snprintf(s->trace[s->n], sizeof(s->trace[0]), "%.32s", rec->trace);
    s->n++;
    return 0;
}

static void test_page_round_trip(void **state)
{
    static const char tricky[] = "quote \" back \\ nl \n tab \t ctl \x01 caf\xc3\xa9 nul";
    struct pm_record recs[2] = {
        {U1, "plain", 5, 1700000000000LL, "4bf92f3577b34da6a3ce929d0e0e4736"},
        {U2, tricky, sizeof(tricky) - 1, 0, NULL}};
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
    /* the optional trace: kept where given, absent where not */
    assert_non_null(
        strstr(text, ",\"ts\":1700000000000,\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}"));
    assert_string_equal(seen.trace[0], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(seen.trace[1], "");
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
    struct pm_record r = {U1, NULL, 0, 7, NULL};
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
    assert_int_equal(pm_results_decode(NULL, body, n, -1, results_seen, statuses, err, sizeof(err)),
                     3);
    assert_int_equal(statuses[0], 201);
    assert_int_equal(statuses[1], -200);
    assert_int_equal(statuses[2], 400);
    /* the same through the fast reader */
    {
        struct pm_reader *rd = pm_reader_new();

        assert_non_null(rd);
        memset(statuses, 0, sizeof(statuses));
        assert_int_equal(
            pm_results_decode(rd, body, n, 3, results_seen, statuses, err, sizeof(err)), 3);
        assert_int_equal(statuses[0], 201);
        assert_int_equal(statuses[1], -200);
        assert_int_equal(statuses[2], 400);
        pm_reader_free(rd);
    }
}

/* Every result of a batch answer, as text: "uuid|status|dup|error;" per
 * item (NULL strings as "-"). */
struct results_text {
    char text[2048];
    size_t len;
};

static int results_print(const struct pm_result *res, size_t index, void *arg)
{
    struct results_text *t = arg;
    int n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "%zu:%s|%d|%d|%s;", index,
                     res->uuid ? res->uuid : "-", res->status, res->duplicate ? 1 : 0,
                     res->error ? res->error : "-");

    assert_true(n > 0 && (size_t)n < sizeof(t->text) - t->len);
    t->len += (size_t)n;
    return 0;
}

/* A result callback that stops at the second result. */
static int results_stop(const struct pm_result *res, size_t index, void *arg)
{
    (void)res;
    (*(int *)arg)++;
    return index == 1 ? -1 : 0;
}

static void test_results_fast_reader_matches_jansson(void **state)
{
    static const char *const bodies[] = {
        /* logging's own shape, a conflict with its error, a 400 without uuid */
        "{\"success\":true,\"results\":[{\"uuid\":\"" U1 "\",\"status\":201,\"duplicate\":false},"
        "{\"uuid\":\"" U2 "\",\"status\":409,\"duplicate\":false,\"error\":\"other msg\"},"
        "{\"uuid\":null,\"status\":400,\"duplicate\":false,\"error\":\"bad uuid\"}]}",
        /* odd items: not objects, a missing or non-integer status, strings of other types */
        "{\"results\":[7,null,{},{\"status\":\"201\"},{\"uuid\":5,\"error\":true,"
        "\"duplicate\":1,\"status\":200}]}",
        /* a status outside int, an escape, a long error text: jansson reads these */
        "{\"results\":[{\"status\":4294967497}]}",
        "{\"results\":[{\"status\":409,\"error\":\"say \\\"no\\\"\"}]}",
        "{\"results\":[],\"success\":true}",
        "  {\"results\" : [ {\"duplicate\":true,\"status\":200} ] }  ",
    };
    struct pm_reader *rd = pm_reader_new();
    size_t i;

    (void)state;
    assert_non_null(rd);
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct results_text fast, slow;
        char err[128];
        long nf, ns;

        memset(&fast, 0, sizeof(fast));
        memset(&slow, 0, sizeof(slow));
        nf = pm_results_decode(rd, bodies[i], strlen(bodies[i]), -1, results_print, &fast, err,
                               sizeof(err));
        ns = pm_results_decode(NULL, bodies[i], strlen(bodies[i]), -1, results_print, &slow, err,
                               sizeof(err));
        assert_true(ns >= 0);
        assert_int_equal(nf, ns);
        assert_string_equal(fast.text, slow.text);
    }
    {
        struct results_text t;
        char err[128];

        memset(&t, 0, sizeof(t));
        assert_int_equal(pm_results_decode(rd, bodies[0], strlen(bodies[0]), -1, results_print, &t,
                                           err, sizeof(err)),
                         3);
        assert_string_equal(t.text,
                            "0:" U1 "|201|0|-;1:" U2 "|409|0|other msg;2:-|400|0|bad uuid;");
        memset(&t, 0, sizeof(t));
        assert_int_equal(pm_results_decode(rd, bodies[1], strlen(bodies[1]), -1, results_print, &t,
                                           err, sizeof(err)),
                         5);
        assert_string_equal(t.text, "0:-|0|0|-;1:-|0|0|-;2:-|0|0|-;3:-|0|0|-;4:-|200|0|-;");
        memset(&t, 0, sizeof(t));
        assert_int_equal(pm_results_decode(rd, bodies[3], strlen(bodies[3]), -1, results_print, &t,
                                           err, sizeof(err)),
                         1);
        assert_string_equal(t.text, "0:-|409|0|say \"no\";");
    }
    pm_reader_free(rd);
    pm_reader_free(NULL);
}

static void test_results_expect_and_stop(void **state)
{
    static const char body[] = "{\"success\":true,\"results\":[{\"status\":201},{\"status\":201},"
                               "{\"status\":201}]}";
    static const char escaped[] = "{\"results\":[{\"status\":201,\"error\":\"\\n\"},"
                                  "{\"status\":201},{\"status\":201}]}";
    struct pm_reader *rd = pm_reader_new();
    const char *const texts[] = {body, escaped};
    size_t i;

    (void)state;
    assert_non_null(rd);
    for (i = 0; i < 2; i++) {
        struct pm_reader *readers[] = {rd, NULL};
        size_t k;

        for (k = 0; k < 2; k++) {
            char err[128] = "";
            int calls = 0;

            /* another number of results than items sent: refused, fn never called */
            assert_int_equal(pm_results_decode(readers[k], texts[i], strlen(texts[i]), 2,
                                               results_stop, &calls, err, sizeof(err)),
                             -1);
            assert_int_equal(calls, 0);
            assert_string_equal(err, "batch answer has 3 results for 2 items");
            /* the callback stops it */
            assert_int_equal(pm_results_decode(readers[k], texts[i], strlen(texts[i]), 3,
                                               results_stop, &calls, err, sizeof(err)),
                             -1);
            assert_int_equal(calls, 2);
            assert_string_equal(err, "batch result 1 refused");
        }
    }
    pm_reader_free(rd);
}

/* Finding 1 (the facade trusted batch answers by position): an answer
 * that says "success":false (or anything but true) is refused by both
 * readers, whatever its results say, and the callback is never called.
 * Before the fix both readers handed out the 201 results. */
static void test_results_success_false_refused(void **state)
{
    static const char *const bodies[] = {
        "{\"success\":false,\"results\":[{\"uuid\":\"" U1 "\",\"status\":201}]}",
        "{\"success\":null,\"results\":[{\"uuid\":\"" U1 "\",\"status\":201}]}",
        "{\"success\":\"true\",\"results\":[{\"uuid\":\"" U1 "\",\"status\":201}]}",
        "{\"results\":[{\"uuid\":\"" U1 "\",\"status\":201,\"error\":\"\\n\"}],"
        "\"success\":false}",
    };
    struct pm_reader *rd = pm_reader_new();
    size_t i, k;

    (void)state;
    assert_non_null(rd);
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct pm_reader *readers[] = {rd, NULL};

        for (k = 0; k < 2; k++) {
            char err[128] = "";
            int calls = 0;

            assert_int_equal(pm_results_decode(readers[k], bodies[i], strlen(bodies[i]), 1,
                                               results_stop, &calls, err, sizeof(err)),
                             -1);
            assert_int_equal(calls, 0);
            assert_string_equal(err, "batch answer does not say \"success\":true");
        }
    }
    pm_reader_free(rd);
}

static void test_error_decode(void **state)
{
    static const char body[] = "{\"success\":false,\"error\":\"journal write failed\"}";
    char out[64], small[8];

    (void)state;
    assert_int_equal(pm_error_decode(body, strlen(body), out, sizeof(out)), 0);
    assert_string_equal(out, "journal write failed");
    assert_int_equal(pm_error_decode(body, strlen(body), small, sizeof(small)), 0);
    assert_string_equal(small, "journal");
    assert_int_equal(pm_error_decode("<html>", 6, out, sizeof(out)), -1);
    assert_string_equal(out, "");
    assert_int_equal(pm_error_decode("{\"error\":3}", 11, out, sizeof(out)), -1);
    assert_string_equal(out, "");
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
    assert_int_equal(
        pm_results_decode(NULL, "{\"success\":true}", 16, -1, NULL, NULL, err, sizeof(err)), -1);
    {
        struct pm_reader *rd = pm_reader_new();

        assert_non_null(rd);
        err[0] = '\0';
        assert_int_equal(
            pm_results_decode(rd, "{\"success\":true}", 16, -1, NULL, NULL, err, sizeof(err)), -1);
        assert_string_equal(err, "not a batch answer (results)");
        assert_int_equal(pm_results_decode(rd, "[]", 2, -1, NULL, NULL, err, sizeof(err)), -1);
        assert_int_equal(pm_results_decode(rd, "nope", 4, -1, NULL, NULL, err, sizeof(err)), -1);
        pm_reader_free(rd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_round_trip),
        cmocka_unit_test(test_list_in_many_pieces),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_results_fast_reader_matches_jansson),
        cmocka_unit_test(test_results_expect_and_stop),
        cmocka_unit_test(test_results_success_false_refused),
        cmocka_unit_test(test_error_decode),
        cmocka_unit_test(test_decoders_refuse_other_bodies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

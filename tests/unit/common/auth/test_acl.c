/* test_acl.c: unit tests for common/auth/acl: the token file's refusals,
 * what each rule allows, the constant-time lookup finding exactly the
 * token given (prefixes, extensions, one byte changed, many tokens), the
 * header precedence, token files, and messages that never quote a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/acl.h"
#include "core/limits.h"
#include "support.h"

/* A fresh temporary directory into dir (cap bytes). */
static void make_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/test_acl-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* A table from JSON text; fails the test when it does not parse. */
static struct acl *parsed(const char *json)
{
    struct acl *a = acl_new();
    char err[512] = "";

    assert_non_null(a);
    if (acl_parse(a, json, strlen(json), "t.json", err, sizeof(err)) != 0)
        fail_msg("parse failed: %s", err);
    return a;
}

/* The error of parsing json (which must fail), into err. */
static void refused(const char *json, char *err, size_t cap)
{
    struct acl *a = acl_new();

    assert_non_null(a);
    err[0] = '\0';
    assert_int_equal(acl_parse(a, json, strlen(json), "t.json", err, cap), -1);
    assert_true(strncmp(err, "t.json: ", 8) == 0);
    acl_free(a);
}

static void test_file_refusals(void **state)
{
    char err[512], json[2048];
    char *big = NULL;
    size_t i, off = 0;

    (void)state;
    refused("[1,2]", err, sizeof(err));
    assert_non_null(strstr(err, "JSON object"));
    refused("{", err, sizeof(err));
    assert_non_null(strstr(err, "not valid JSON"));
    refused("{}", err, sizeof(err));
    assert_non_null(strstr(err, "no token"));
    refused("{\"\": \"read\"}", err, sizeof(err));
    assert_non_null(strstr(err, "token #1: the token is empty"));
    refused("{\"ok\": \"read\", \"has space\": \"read\"}", err, sizeof(err));
    assert_non_null(strstr(err, "token #2"));
    assert_non_null(strstr(err, "printable ASCII"));
    assert_null(strstr(err, "has space"));
    refused("{\"tab\\there\": \"read\"}", err, sizeof(err));
    assert_non_null(strstr(err, "printable ASCII"));
    refused("{\"x\": \"admin\"}", err, sizeof(err));
    assert_non_null(strstr(err, "unknown rule 'admin'"));
    refused("{\"x\": \"service:\"}", err, sizeof(err));
    assert_non_null(strstr(err, "service name"));
    refused("{\"x\": \"service:a/b\"}", err, sizeof(err));
    assert_non_null(strstr(err, "service name"));
    refused("{\"x\": 5}", err, sizeof(err));
    assert_non_null(strstr(err, "string or a non-empty array"));
    refused("{\"x\": []}", err, sizeof(err));
    refused("{\"x\": [\"read\", 1]}", err, sizeof(err));
    assert_non_null(strstr(err, "rule 2 is not a string"));
    refused("{\"x\": \"read\", \"x\": \"write\"}", err, sizeof(err));
    /* 257 bytes */
    memset(json, 0, sizeof(json));
    json[off++] = '{';
    json[off++] = '"';
    for (i = 0; i < LIM_ACL_TOKEN_MAX + 1; i++)
        json[off++] = 'a';
    strcpy(json + off, "\": \"read\"}");
    refused(json, err, sizeof(err));
    assert_non_null(strstr(err, "longer than 256 bytes"));
    /* 256 bytes is fine */
    json[LIM_ACL_TOKEN_MAX + 2] = '\0';
    strcat(json, "\": \"read\"}");
    acl_free(parsed(json));
    /* LIM_ACL_TOKENS_MAX + 1 tokens */
    big = malloc((LIM_ACL_TOKENS_MAX + 1) * 32 + 8);
    assert_non_null(big);
    off = (size_t)sprintf(big, "{");
    for (i = 0; i <= LIM_ACL_TOKENS_MAX; i++)
        off += (size_t)sprintf(big + off, "%s\"t%zu\":\"read\"", i ? "," : "", i);
    strcpy(big + off, "}");
    refused(big, err, sizeof(err));
    assert_non_null(strstr(err, "more than 1024 tokens"));
    free(big);
}

static void test_load_file(void **state)
{
    char dir[256], path[300], err[512];
    struct acl *a = acl_new();
    FILE *f;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/none.json", dir);
    assert_int_equal(acl_load_file(a, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "none.json: cannot open"));
    snprintf(path, sizeof(path), "%s/t.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"s3cr3t\": [\"service:a\", \"service:b\"], \"ops\": \"write\"}\n", f);
    fclose(f);
    assert_int_equal(acl_load_file(a, path, err, sizeof(err)), 0);
    assert_int_equal(acl_count(a), 2);
    assert_int_equal(acl_allows(a, "s3cr3t", ACL_WRITE_SERVICE, "b"), ACL_ALLOWED);
    acl_free(a);
    ts_remove_tree(dir);
}

static void test_rules(void **state)
{
    struct acl *a = parsed("{\"r\": \"read\", \"w\": \"write\", \"s\": \"service:logging-service\","
                           " \"m\": [\"service:a\", \"service:b\"]}");

    (void)state;
    /* read */
    assert_int_equal(acl_allows(a, "r", ACL_READ, NULL), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "r", ACL_WRITE_SERVICE, "a"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "r", ACL_WRITE_KV, "config/a/x"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "r", ACL_WRITE_ANY, NULL), ACL_DENIED);
    /* write */
    assert_int_equal(acl_allows(a, "w", ACL_READ, NULL), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "w", ACL_WRITE_SERVICE, "anything"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "w", ACL_WRITE_KV, "other/key"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "w", ACL_WRITE_ANY, NULL), ACL_ALLOWED);
    /* service:<name> */
    assert_int_equal(acl_allows(a, "s", ACL_READ, NULL), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_SERVICE, "logging-service"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_SERVICE, "facade-service"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_SERVICE, "logging-service2"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_SERVICE, "logging"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_SERVICE, NULL), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "config/logging-service/replicas"),
                     ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "config/logging-service/"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "config/logging-service"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "config/logging-servicex/a"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "config/facade-service/a"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_KV, "logging-service/a"), ACL_DENIED);
    assert_int_equal(acl_allows(a, "s", ACL_WRITE_ANY, NULL), ACL_DENIED);
    /* several rules */
    assert_int_equal(acl_allows(a, "m", ACL_WRITE_SERVICE, "a"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "m", ACL_WRITE_SERVICE, "b"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "m", ACL_WRITE_SERVICE, "c"), ACL_DENIED);
    /* no token, unknown token, anonymous read */
    assert_int_equal(acl_allows(a, NULL, ACL_READ, NULL), ACL_NO_TOKEN);
    assert_int_equal(acl_allows(a, "", ACL_READ, NULL), ACL_NO_TOKEN);
    assert_int_equal(acl_allows(a, "nope", ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    acl_set_anonymous_read(a, true);
    assert_int_equal(acl_allows(a, NULL, ACL_READ, NULL), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, NULL, ACL_WRITE_SERVICE, "a"), ACL_NO_TOKEN);
    assert_int_equal(acl_allows(a, "nope", ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    /* no table: open */
    assert_int_equal(acl_allows(NULL, NULL, ACL_WRITE_ANY, NULL), ACL_ALLOWED);
    acl_free(a);
}

/* The lookup finds only the exact token: not a prefix, an extension, a
 * token with one byte changed anywhere, or one of another length padded
 * with NUL; among many tokens each finds its own rules. */
static void test_constant_time_lookup_is_exact(void **state)
{
    struct acl *a = acl_new();
    char tok[LIM_ACL_TOKEN_MAX + 2], name[32], err[256];
    size_t i;

    (void)state;
    assert_non_null(a);
    memset(tok, 'k', LIM_ACL_TOKEN_MAX);
    tok[LIM_ACL_TOKEN_MAX] = '\0';
    assert_int_equal(acl_add(a, tok, "service:full", err, sizeof(err)), 0);
    assert_int_equal(acl_add(a, "abc", "service:short", err, sizeof(err)), 0);
    for (i = 0; i < 200; i++) {
        char t[32];

        snprintf(t, sizeof(t), "tok-%zu", i);
        snprintf(name, sizeof(name), "svc%zu", i);
        snprintf(err, sizeof(err), "service:%s", name);
        assert_int_equal(acl_add(a, t, err, err, sizeof(err)), 0);
    }
    assert_int_equal(acl_count(a), 202);
    for (i = 0; i < 200; i++) {
        char t[32];

        snprintf(t, sizeof(t), "tok-%zu", i);
        snprintf(name, sizeof(name), "svc%zu", i);
        assert_int_equal(acl_allows(a, t, ACL_WRITE_SERVICE, name), ACL_ALLOWED);
        snprintf(name, sizeof(name), "svc%zu", (i + 1) % 200);
        assert_int_equal(acl_allows(a, t, ACL_WRITE_SERVICE, name), ACL_DENIED);
    }
    assert_int_equal(acl_allows(a, tok, ACL_WRITE_SERVICE, "full"), ACL_ALLOWED);
    for (i = 0; i < LIM_ACL_TOKEN_MAX; i++) {
        tok[i] = 'j';
        assert_int_equal(acl_allows(a, tok, ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
        tok[i] = 'k';
    }
    tok[LIM_ACL_TOKEN_MAX - 1] = '\0'; /* a prefix */
    assert_int_equal(acl_allows(a, tok, ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    tok[LIM_ACL_TOKEN_MAX - 1] = 'k';
    tok[LIM_ACL_TOKEN_MAX] = 'k'; /* one byte longer than any */
    tok[LIM_ACL_TOKEN_MAX + 1] = '\0';
    assert_int_equal(acl_allows(a, tok, ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    assert_int_equal(acl_allows(a, "ab", ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    assert_int_equal(acl_allows(a, "abcd", ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    assert_int_equal(acl_allows(a, "abd", ACL_READ, NULL), ACL_UNKNOWN_TOKEN);
    assert_int_equal(acl_allows(a, "abc", ACL_WRITE_SERVICE, "short"), ACL_ALLOWED);
    assert_int_equal(acl_allows(a, "abc", ACL_WRITE_SERVICE, "full"), ACL_DENIED);
    /* the same token again adds its rule */
    assert_int_equal(acl_add(a, "abc", "write", err, sizeof(err)), 0);
    assert_int_equal(acl_count(a), 202);
    assert_int_equal(acl_allows(a, "abc", ACL_WRITE_ANY, NULL), ACL_ALLOWED);
    acl_free(a);
}

static void test_header_precedence(void **state)
{
    (void)state;
    assert_null(acl_token_from_headers(NULL, NULL, NULL));
    assert_string_equal(acl_token_from_headers("a", "b", "Bearer c"), "a");
    assert_string_equal(acl_token_from_headers(NULL, "b", "Bearer c"), "b");
    assert_string_equal(acl_token_from_headers("", "b", "Bearer c"), "b");
    assert_string_equal(acl_token_from_headers(NULL, NULL, "Bearer c"), "c");
    assert_string_equal(acl_token_from_headers(NULL, NULL, "bearer   c"), "c");
    assert_null(acl_token_from_headers(NULL, NULL, "Basic dXNlcjpwdw=="));
    assert_null(acl_token_from_headers(NULL, NULL, "Bearer"));
    assert_null(acl_token_from_headers(NULL, NULL, "Bearer "));
    assert_null(acl_token_from_headers(NULL, NULL, "Bearerc"));
    assert_null(acl_token_from_headers("", "", NULL));
}

static void test_describe_never_quotes_the_token(void **state)
{
    char buf[256];

    (void)state;
    assert_non_null(
        strstr(acl_describe(ACL_NO_TOKEN, ACL_READ, NULL, buf, sizeof(buf)), "X-Registry-Token"));
    assert_string_equal(acl_describe(ACL_UNKNOWN_TOKEN, ACL_READ, NULL, buf, sizeof(buf)),
                        "unknown token");
    assert_string_equal(acl_describe(ACL_DENIED, ACL_WRITE_SERVICE, "web", buf, sizeof(buf)),
                        "the token may not write service 'web'");
    assert_string_equal(acl_describe(ACL_DENIED, ACL_WRITE_KV, "config/a/b", buf, sizeof(buf)),
                        "the token may not write key 'config/a/b'");
    assert_string_equal(acl_describe(ACL_DENIED, ACL_WRITE_ANY, NULL, buf, sizeof(buf)),
                        "the token may not write");
}

static void test_token_file(void **state)
{
    char dir[256], path[300], out[LIM_ACL_TOKEN_MAX + 1], err[512];
    char longtok[LIM_ACL_TOKEN_MAX + 2];
    FILE *f;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tok", dir);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
    f = fopen(path, "w");
    fputs("s3cr3t \r\nsecond line\n", f);
    fclose(f);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "s3cr3t");
    f = fopen(path, "w");
    fputs("no-newline", f);
    fclose(f);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "no-newline");
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is empty"));
    f = fopen(path, "w");
    fputs("two words\n", f);
    fclose(f);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "printable ASCII"));
    assert_null(strstr(err, "two words"));
    memset(longtok, 'x', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    f = fopen(path, "w");
    fprintf(f, "%s\n", longtok);
    fclose(f);
    assert_int_equal(acl_token_read_file(path, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 256"));
    ts_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_refusals),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_constant_time_lookup_is_exact),
        cmocka_unit_test(test_header_precedence),
        cmocka_unit_test(test_describe_never_quotes_the_token),
        cmocka_unit_test(test_token_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

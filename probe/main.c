/* main.c: svc-probe, the container health check. `svc-probe [URL]` does one
 * blocking GET of URL (default http://127.0.0.1:$PORT/health) with a 2 s
 * timeout and exits 0 when the answer is HTTP 200, else 1 with one line on
 * stderr. It is a short-lived command, not a service: the blocking libcurl
 * easy API is the right tool here, unlike inside the event loops.
 *
 * Exit codes follow Docker's HEALTHCHECK contract: 0 healthy, 1 unhealthy
 * (2 is reserved by Docker, so usage errors exit 1 too). */
#include <curl/curl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_NAME       "svc-probe"
#define PROBE_TIMEOUT_MS 2000L
#define PROBE_URL_MAX    2048 /* longer URLs are refused, not truncated */

/* Discard the body: only the status matters. Returns the size taken. */
static size_t probe_discard(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    (void)arg;
    return size * nmemb;
}

/* Build the default URL from $PORT into out (cap bytes). Returns 0, or -1
 * with a message in err (errlen bytes) when PORT is unset or not 1..65535. */
static int probe_default_url(char *out, size_t cap, char *err, size_t errlen)
{
    const char *port = getenv("PORT");
    char *end = NULL;
    long n;

    if (port == NULL || port[0] == '\0') {
        snprintf(err, errlen, "no URL given and PORT is not set");
        return -1;
    }
    errno = 0;
    n = strtol(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || n < 1 || n > 65535) {
        snprintf(err, errlen, "PORT '%s' is not a port number (1..65535)", port);
        return -1;
    }
    snprintf(out, cap, "http://127.0.0.1:%ld/health", n);
    return 0;
}

/* GET url once. Returns 0 on HTTP 200, else -1 with the reason in err. */
static int probe_get(const char *url, char *err, size_t errlen)
{
    char curl_err[CURL_ERROR_SIZE];
    CURL *easy = NULL;
    CURLcode res;
    long status = 0;
    int rc = -1;

    curl_err[0] = '\0';
    easy = curl_easy_init();
    if (easy == NULL) {
        snprintf(err, errlen, "cannot create a libcurl handle");
        goto cleanup;
    }
    /* NOSIGNAL: no SIGALRM for the DNS timeout. PROXY "": a local probe
     * must not follow http_proxy from the environment. No redirects. */
    if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, PROBE_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_err) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, probe_discard) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_USERAGENT, PROBE_NAME) != CURLE_OK) {
        snprintf(err, errlen, "cannot set up the request");
        goto cleanup;
    }
    res = curl_easy_perform(easy);
    if (res != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_err[0] != '\0' ? curl_err : curl_easy_strerror(res));
        goto cleanup;
    }
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
        snprintf(err, errlen, "no HTTP status in the answer");
        goto cleanup;
    }
    if (status != 200) {
        snprintf(err, errlen, "HTTP %ld", status);
        goto cleanup;
    }
    rc = 0;
cleanup:
    curl_easy_cleanup(easy);
    return rc;
}

int main(int argc, char **argv)
{
    char url[PROBE_URL_MAX];
    char err[CURL_ERROR_SIZE + 64];
    int rc = 1;

    err[0] = '\0';
    if (argc > 2) {
        fprintf(stderr, PROBE_NAME ": usage: " PROBE_NAME " [URL]\n");
        return 1;
    }
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("Usage: " PROBE_NAME " [URL]\n"
               "GET URL (default http://127.0.0.1:$PORT/health) once, timeout 2 s;\n"
               "exit 0 on HTTP 200, else 1 with the reason on stderr.\n");
        return 0;
    }
    if (argc == 2) {
        if (strlen(argv[1]) >= sizeof(url)) {
            fprintf(stderr, PROBE_NAME ": URL longer than %d bytes\n", PROBE_URL_MAX - 1);
            return 1;
        }
        snprintf(url, sizeof(url), "%s", argv[1]);
    } else if (probe_default_url(url, sizeof(url), err, sizeof(err)) != 0) {
        fprintf(stderr, PROBE_NAME ": %s\n", err);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROBE_NAME ": cannot initialise libcurl\n");
        return 1;
    }
    if (probe_get(url, err, sizeof(err)) == 0)
        rc = 0;
    else
        fprintf(stderr, PROBE_NAME ": %s: %s\n", url, err);
    curl_global_cleanup();
    return rc;
}

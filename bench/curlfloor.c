/* curlfloor.c: the resident memory any program pays for Debian's libcurl,
 * as a reference beside the services' idle RSS in bench/run.sh.
 *
 *   curlfloor 0   linked with libcurl, nothing called
 *   curlfloor 1   curl_global_init
 *   curlfloor 2   curl_global_init and one multi handle (what a service
 *                 holds before it makes a request)
 *
 * It prints "ready" on stdout once set up, then sleeps until a signal;
 * bench/run.sh reads its VmRSS meanwhile. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int level = argc > 1 ? atoi(argv[1]) : 0;
    CURLM *multi = NULL;

    if (level >= 1 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (level >= 2 && (multi = curl_multi_init()) == NULL)
        return 1;
    printf("ready\n");
    fflush(stdout);
    pause();
    curl_multi_cleanup(multi);
    return 0;
}

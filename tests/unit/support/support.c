/* support.c: see support.h. */
#include "support.h"

#include <dirent.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The port a bound IPv4 socket has, or -1. */
static int ts_bound_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

int ts_closed_port(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        port = ts_bound_port(fd);
    close(fd);
    return port;
}

int ts_evhttp_listen(struct evhttp *http, int port)
{
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);

    return bound ? ts_bound_port(evhttp_bound_socket_get_fd(bound)) : -1;
}

void ts_remove_tree(const char *dir)
{
    DIR *d = NULL;
    struct dirent *ent = NULL;
    char file[4096];

    if (!dir[0])
        return;
    d = opendir(dir);
    if (d) {
        for (;;) {
            ent = readdir(d);
            if (!ent)
                break;
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
                continue;
            snprintf(file, sizeof(file), "%s/%s", dir, ent->d_name);
            if (unlink(file) != 0)
                ts_remove_tree(file);
        }
        closedir(d);
    }
    rmdir(dir);
}

static FILE *ts_cap_file;
static int ts_cap_saved = -1;

int ts_capture_begin(void)
{
    fflush(stderr);
    ts_cap_file = tmpfile();
    if (!ts_cap_file)
        return -1;
    ts_cap_saved = dup(2);
    if (ts_cap_saved < 0 || dup2(fileno(ts_cap_file), 2) < 0) {
        if (ts_cap_saved >= 0)
            close(ts_cap_saved);
        ts_cap_saved = -1;
        fclose(ts_cap_file);
        ts_cap_file = NULL;
        return -1;
    }
    return 0;
}

void ts_capture_end(char *buf, size_t cap)
{
    size_t n = 0;

    if (cap > 0)
        buf[0] = '\0';
    if (!ts_cap_file)
        return;
    fflush(stderr);
    dup2(ts_cap_saved, 2);
    close(ts_cap_saved);
    ts_cap_saved = -1;
    rewind(ts_cap_file);
    if (cap > 0) {
        n = fread(buf, 1, cap - 1, ts_cap_file);
        buf[n] = '\0';
    }
    fclose(ts_cap_file);
    ts_cap_file = NULL;
    if (n > 0 && write(2, buf, n) < 0)
        n = 0;
}

int ts_count_of(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = strstr(hay, needle);

    while (p) {
        n++;
        p = strstr(p + 1, needle);
    }
    return n;
}

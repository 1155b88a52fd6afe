/* watch.h: svcctl watch [--type T] [--name N]: follows the registry's
 * change events (GET /v1/events as Server-Sent Events) and prints one
 * line per event (evline.h), or with --json each event's JSON on a line,
 * until SIGINT or SIGTERM (then SC_OK). An sc_cmd_fn (cli.h). */
#ifndef SVCCTL_WATCH_H
#define SVCCTL_WATCH_H

#include "cli.h"

int cwat_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

#endif

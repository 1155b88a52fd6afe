/* replicas.h: svcctl replicas: the registry replicas on the store and
 * which one leads (GET /v1/replicas), as a table. An sc_cmd_fn (cli.h). */
#ifndef SVCCTL_REPLICAS_H
#define SVCCTL_REPLICAS_H

#include "cli.h"

/* svcctl replicas: one row per live replica, oldest first. */
int crep_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

#endif

/* kv.h: svcctl kv get KEY | put KEY VALUE | del KEY | ls [PREFIX], over
 * the registry's /v1/kv (Consul's KV paths). An sc_cmd_fn (cli.h). */
#ifndef SVCCTL_KV_H
#define SVCCTL_KV_H

#include "cli.h"

/* args[0] the subcommand, the rest its operands. */
int ckv_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

#endif

#!/usr/bin/env bash
# scripts/compose-secrets.sh [DIR]: make the tokens the compose stack runs
# with (docker-compose.yaml reads them from DIR, default ./secrets, or from
# $SVC_SECRETS_DIR). Each token is 32 random bytes in hex from
# /dev/urandom; files already there are kept, so running it again changes
# nothing. Nothing here is baked into the image: compose mounts each file
# read-only at /run/secrets/<name> in the containers that need it.
#
#   acl-tokens.json   the registry's --acl-tokens file: each service's token
#                     may write its own service's instances; ops.token may
#                     write everything
#   registry-ops.token, facade.token, logging.token, messages.token
#   peer.token        what the facade sends to logging-service, the only
#                     token logging accepts writes with
set -euo pipefail
dir=${1:-${SVC_SECRETS_DIR:-./secrets}}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
for name in registry-ops facade logging messages peer; do
  f="$dir/$name.token"
  [ -s "$f" ] || { token >"$f"; echo >>"$f"; }
done
if [ ! -s "$dir/acl-tokens.json" ]; then
  {
    printf '{\n'
    printf '  "%s": "write",\n' "$(head -n1 "$dir/registry-ops.token")"
    printf '  "%s": "service:facade-service",\n' "$(head -n1 "$dir/facade.token")"
    printf '  "%s": "service:logging-service",\n' "$(head -n1 "$dir/logging.token")"
    printf '  "%s": "service:messages-service"\n' "$(head -n1 "$dir/messages.token")"
    printf '}\n'
  } >"$dir/acl-tokens.json"
fi
# The containers run as uid 10001: the files must be readable inside them.
# The directory stays 0700, so on the host only its owner reaches them.
chmod 644 "$dir"/*.token "$dir/acl-tokens.json"
echo "compose-secrets: tokens in $dir"

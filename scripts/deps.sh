#!/usr/bin/env bash
# deps.sh: install the Debian/Ubuntu packages the build and the tests need,
# only those missing, with sudo when not root. Sourced-safe: run it directly.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libevent-dev libcurl4-openssl-dev libjansson-dev uuid-dev libsqlite3-dev
  uthash-dev libcmocka-dev python3 curl util-linux
)
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(clang libclang-rt-dev clang-format iproute2 dnsutils)   # fuzz harnesses (libFuzzer runtime), style check, ss, dig (test_dns)
  PACKAGES+=(python3-consul)   # tests/integration/test_consul.py: a real Consul client
  PACKAGES+=(chromium chromium-driver python3-selenium)   # test_ui.py: the dashboard in headless chromium
  PACKAGES+=(etcd-server etcd-client)   # test_etcd_store.py, test_etcd_follow: a real 3-member etcd cluster
  PACKAGES+=(iptables)   # test_partition.py: cuts a replica off from etcd in its network namespace
  PACKAGES+=(prometheus victoria-metrics)   # test_prometheus.py: consul_sd_configs scrapers (bookworm's prometheus has Consul SD off)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

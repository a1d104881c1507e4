#!/usr/bin/env bash
# Installs what Plexus needs to build, test and demo, and nothing twice: Debian packages (when a tool they
# provide is missing) and the npm packages pinned by package-lock.json (when the lock file changed).
set -euo pipefail
cd "$(dirname "$0")/.."

# tool-or-file:package pairs. A tool present means its package is installed.
needs=(
  /usr/lib/cni/bridge:containernetworking-plugins
  ip:iproute2
  ping:iputils-ping
  clang:clang
  llc:llvm
  /usr/include/bpf/libbpf.h:libbpf-dev
  bpftool:bpftool
  etcd:etcd-server
  etcdctl:etcd-client
  iperf3:iperf3
  sockperf:sockperf
  hyperfine:hyperfine
  tcpdump:tcpdump
  strace:strace
  iptables:iptables
  pkg-config:pkg-config
  cc:gcc
  podman:podman
  runc:runc
  busybox:busybox-static
  /usr/bin/dpdk-hugepages.py:dpdk
  # Debian's dpdk shipped testpmd until 22.11.11-0+deb12u1, which moved it to dpdk-dev (as every other DPDK tool).
  dpdk-testpmd:dpdk-dev
  /usr/include/dpdk/rte_eal.h:libdpdk-dev
)
missing=()
for pair in "${needs[@]}"; do
  what=${pair%%:*} pkg=${pair##*:}
  if [[ $what == /* ]]; then [[ -e $what ]] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -o DPkg::Lock::Timeout=600 -qq
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

# npm: reinstall only when package-lock.json differs from what was installed.
stamp=node_modules/.plexus-lock-stamp
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

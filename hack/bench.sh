#!/usr/bin/env bash
# `make bench`: bundles each benchmark under bench/*/main.ts and runs it (as root: they use network
# namespaces). Results land in bench/results/ as JSON, a markdown table and, where useful, an SVG plot.
# BENCH=name runs one benchmark only.
set -euo pipefail
cd "$(dirname "$0")/.."
unset NODE_EXTRA_CA_CERTS
mkdir -p dist/bench
for main in bench/*/main.ts; do
  name=$(basename "$(dirname "$main")")
  [[ -n ${BENCH:-} && $BENCH != "$name" ]] && continue
  npx esbuild "$main" --bundle --platform=node --target=node20 --external:koffi --external:etcd3 --log-level=warning --outfile="dist/bench/$name.js"
  echo "==> bench/$name"
  node "dist/bench/$name.js"
done

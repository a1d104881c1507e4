#!/usr/bin/env bash
# `make demo` entry: bundles hack/demo.ts (a two-node cluster in network namespaces, see hack/cluster/) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
node_modules/.bin/esbuild hack/demo.ts --bundle --platform=node --target=node20 --log-level=warning --outfile=dist/demo.js
exec node dist/demo.js "$@"

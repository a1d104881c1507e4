#!/usr/bin/env bash
# `make demo-k8s` entry: bundles hack/demo-k8s.ts (Plexus on the Kubernetes API, against the test API server) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
node_modules/.bin/esbuild hack/demo-k8s.ts --bundle --platform=node --target=node20 --log-level=warning --outfile=dist/demo-k8s.js
exec node dist/demo-k8s.js "$@"

#!/usr/bin/env bash
# `make demo` entry: the demo itself is hack/demo.js.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node hack/demo.js "$@"

# Plexus. `make demo` and `make test` are the two commands a fresh machine needs; each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build
export NODE_EXTRA_CA_CERTS :=

.PHONY: deps build typecheck bundle test test-unit test-integration demo demo-k8s bench lint clean

deps:
	@bash hack/deps.sh

typecheck:
	npx tsc -p tsconfig.json

bundle:
	node hack/build.js

build: deps typecheck bundle

lint: deps typecheck
	node hack/lint.js

test: build
	node hack/lint.js
	npx jest --runInBand --ci $(JEST_ARGS)

test-unit: build
	npx jest --runInBand --ci --testPathIgnorePatterns=/test/integration/ $(JEST_ARGS)

demo: build
	bash hack/demo.sh

demo-k8s: build
	bash hack/demo-k8s.sh

bench: build
	bash hack/bench.sh

clean:
	rm -rf bin dist

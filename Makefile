# Plexus. `make demo` and `make test` are the two commands a fresh machine needs; each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build
export NODE_EXTRA_CA_CERTS :=

.PHONY: deps build typecheck bundle test test-unit test-integration demo bench lint clean

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

bench: build
	bash hack/bench.sh

clean:
	rm -rf bin dist

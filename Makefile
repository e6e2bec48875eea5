# Developer entry points. `.ci/run` installs the tools and calls `make test`.
CARGO ?= cargo

.PHONY: build test demo bench lint

## build: compile the crate and the cogpack CLI (debug)
build:
	$(CARGO) build

## test: every test, including the end-to-end ones (registry, stand-in bases, bwrap)
test: build
	$(CARGO) test --no-fail-fast --lib --bins --tests

## demo: build an example model without Docker and serve a prediction (scripts/demo.sh)
demo:
	bash scripts/demo.sh

## bench: run every bench/*/run and write BENCHMARKS.md (scripts/bench.sh)
bench:
	bash scripts/bench.sh

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

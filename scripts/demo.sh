#!/usr/bin/env bash
# `make demo`: installs what it needs, builds cogpack, starts a loopback
# registry with a python:3.11-slim stand-in base, builds and pushes
# examples/hello with `cogpack build --push`, runs it without Docker and
# prints the prediction and the pushed digest (examples/demo.rs). Everything
# it starts is stopped when it exits.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ "${SKIP_LOCAL_BASE:-}" = "1" ]; then
  # Real public base images: needs internet access to Docker Hub, PyPI and GitHub.
  . scripts/install-deps.sh
  require_cargo
  cargo build --quiet
  cd examples/hello
  exec "$repo/target/debug/cogpack" build -t cogpack-demo/hello:latest
fi
. scripts/install-deps.sh
install_all
cargo build --quiet --bins --example demo
exec "$repo/target/debug/examples/demo"

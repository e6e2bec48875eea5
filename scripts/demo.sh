#!/usr/bin/env bash
# `make demo`: the README's main command. For now it builds the CLI and prints the build plan
# of examples/hello; the full demo (local registry + stand-in base, `cogpack build --push`,
# run without Docker, print prediction and digest) replaces the last step once the native
# engine lands.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --manifest-path "$repo/Cargo.toml"
cd "$repo/examples/hello"
"$repo/target/debug/cogpack" plan

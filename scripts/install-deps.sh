#!/usr/bin/env bash
# Installs everything cogpack's tests and demo use on a Debian/Ubuntu machine
# (as root): Debian packages, uv from PyPI, and checks for cargo. Sourced by
# .ci/run and scripts/demo.sh; idempotent and quick when all is installed.

# Debian packages the test suite uses (registry, image tools, sandbox, base-image builder, …).
DEBIAN_PACKAGES=(
  docker-registry   # reference Distribution registry on 127.0.0.1
  skopeo            # independent registry client (copy / inspect)
  umoci             # OCI layouts: build stand-in base images, unpack
  mmdebstrap        # builds the python:3.11-slim / cog-base stand-ins
  bubblewrap        # runs unpacked images without Docker
  tini              # tini-static for the cog-base stand-in and layer tests
  jq curl git ca-certificates
  apache2-utils     # htpasswd for registry basic-auth tests
  python3-cryptography  # token-auth test server (ES256 JWT)
  python3 python3-pip
  make gcc libc6-dev    # build the crate (C parts of zstd, tree-sitter)
  golang-go             # reference Go tar writer for the weights byte-compatibility test
  zstd openssl          # baselines and checks in layer and TLS tests
  nodejs                # runs @balena/dockerignore for the .dockerignore conformance test
  uidmap                # newuidmap/newgidmap for the rootless (user namespace) sandbox tests
  python3.11            # relocated into a python-build-standalone-shaped archive (nvidia/cuda path test)
  passwd util-linux     # useradd and setpriv: the rootless tests run cogpack as a normal user
)
# PyPI tools, pinned.
UV_VERSION=0.13.9

export DEBIAN_FRONTEND=noninteractive
export CI="${CI:-true}"

missing_debian_packages() {
  local pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

install_debian_packages() {
  local missing
  mapfile -t missing < <(missing_debian_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    echo ".ci/run: Debian packages already installed"
    return
  fi
  echo ".ci/run: installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
}

install_uv() {
  if command -v uv >/dev/null 2>&1 && [ "$(uv --version | awk '{print $2}')" = "$UV_VERSION" ]; then
    echo ".ci/run: uv $UV_VERSION already installed"
    return
  fi
  # Debian's python3 is "externally managed" (PEP 668); uv is a standalone binary, so a
  # system-wide install next to apt's packages is what we want here.
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  hash -r
  # pyenv-style installs put console scripts behind shims that need a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  uv --version
}

require_cargo() {
  # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || {
    echo ".ci/run: cargo not found; install Rust stable (rustup) first" >&2
    exit 1
  }
}

install_all() {
  install_debian_packages
  install_uv
  require_cargo
}

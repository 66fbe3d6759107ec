# Shared by scripts/run.sh and scripts/test.sh: idempotent installs and the
# cockpit build. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
TRUNK_VERSION=0.21.14

step() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "installing system packages needs root: run as root or install sudo"; fi
}

# need_apt PKG...: installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "Installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The wasm-bindgen version locked in Cargo.lock (the CLI must match it).
locked_wasm_bindgen() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

need_web_tools() {
  # Debian's Rust 1.96 with std sources builds wasm (see ../shared/TOOLCHAIN.md).
  need_apt rustc-web cargo-web rust-web-src lld-19
  command -v cargo >/dev/null || die "cargo is not on PATH: install Rust with rustup"
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    step "Installing trunk $TRUNK_VERSION (takes several minutes once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked --quiet
  fi
  local want; want="$(locked_wasm_bindgen)"
  [ -n "$want" ] || die "Cargo.lock names no wasm-bindgen version"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    step "Installing wasm-bindgen-cli $want (takes several minutes once)"
    # No --locked: the registry here lacks some patch releases its lockfile names.
    cargo install wasm-bindgen-cli --version "$want" --quiet
  fi
}

# build_web: builds the cockpit into dist/ unless nothing it is made from changed.
build_web() {
  local stamp="$ROOT/dist/.build-stamp"
  if [ -f "$stamp" ] && [ -f "$ROOT/dist/index.html" ] && [ -z "$(find "$ROOT/frontend" "$ROOT/shared-types" \
      "$ROOT/index.html" "$ROOT/Trunk.toml" "$ROOT/Cargo.lock" "$ROOT/Cargo.toml" -newer "$stamp" -print -quit)" ]; then
    step "Cockpit is up to date (dist/)"
    return 0
  fi
  step "Building the cockpit (wasm, release) into dist/"
  (
    cd "$ROOT"
    # Debian's cargo/rustc first; std for wasm32 is compiled from its sources.
    PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 \
      CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 \
      CARGO_TARGET_DIR="$ROOT/target/wasm" \
      trunk --color never build --release --locked 2>&1 | grep -vE '^\s*$' | tail -n 40
    exit "${PIPESTATUS[0]}"
  )
  touch "$stamp"
}

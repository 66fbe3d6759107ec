#!/usr/bin/env bash
# Runs every test: native unit and integration tests (SQLite and a real
# PostgreSQL), the wasm build, the end-to-end suite in headless Chromium, and
# the API fuzzed from its OpenAPI document (scripts/api-fuzz.sh).
# Installs what is missing first.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_apt qemu-utils e2fsprogs dosfstools mtools ntfs-3g wimtools chromium chromium-driver postgresql
need_web_tools
build_web
# cargo test builds target/debug/sendense for the backend's integration tests;
# the end-to-end suite runs that same binary (a separate `cargo build` would
# resolve other features and compile much of the tree twice).
step "Running the tests"
rm -f "$ROOT/target/e2e-metrics.txt" "$ROOT/target/lab-metrics.txt"
status=0
cargo test --locked --workspace --exclude sendense-frontend --no-fail-fast || status=$?
"$ROOT/scripts/api-fuzz.sh" "$ROOT/target/debug/sendense" || status=$?
if [ -f "$ROOT/target/e2e-metrics.txt" ]; then
  step "Measured by the end-to-end suite"
  cat "$ROOT/target/e2e-metrics.txt"
fi
if [ -f "$ROOT/target/lab-metrics.txt" ]; then
  step "Measured by the demo lab tests"
  cat "$ROOT/target/lab-metrics.txt"
fi
exit "$status"

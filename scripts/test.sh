#!/usr/bin/env bash
# Runs every test: native unit and integration tests (SQLite and a real
# PostgreSQL), the wasm build, the end-to-end suite in headless Chromium, and
# the guest filesystem reader fuzzed for a bounded time (scripts/fuzz-guest-fs.sh)
# and the API fuzzed from its OpenAPI document (scripts/api-fuzz.sh).
# Installs what is missing first, among them the object-storage servers the
# repository tests start (moto for S3, Azurite for Azure Blob; scripts/lib.sh).
#
# SENDENSE_FUZZ_SECONDS: how long to fuzz guest-fs (default 60; 0 skips it).
# A crash, hang or memory blow-up fails the run (the input is left in
# guest-fs/fuzz/artifacts/). Cost on the 2-core build machine: warm, the
# fuzzing time plus ~2 s (62 s for 60); cold, ~2 min more for the nightly
# instrumented build of the fuzz target (the seed generator is the test
# binary `cargo test` just built), plus the nightly toolchain and cargo-fuzz
# when they are missing (a few minutes, once).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
fuzz_seconds="${SENDENSE_FUZZ_SECONDS:-60}"
case "$fuzz_seconds" in
  ''|*[!0-9]*) die "SENDENSE_FUZZ_SECONDS must be a whole number of seconds (0 skips fuzzing), not '$fuzz_seconds'" ;;
esac
need_apt qemu-utils e2fsprogs dosfstools mtools ntfs-3g wimtools chromium chromium-driver postgresql python3-aiosmtpd
need_libvirt
need_guest_kit
need_promtool
need_web_tools
need_lighthouse
need_moto
need_azurite
build_web
# cargo test builds target/debug/sendense for the backend's integration tests;
# the end-to-end suite runs that same binary (a separate `cargo build` would
# resolve other features and compile much of the tree twice).
step "Running the tests"
# The lowest free space on the disk the tests write to (the build's and the
# temporary files'), sampled every 2 s: printed at the end, so a run that
# failed with "No space left on device" says how close it came.
disk_log="$ROOT/target/disk-free.log"
free_mib() { df --output=avail -B1M "$ROOT/target" /tmp 2>/dev/null | tail -n +2 | sort -n | head -n 1; }
echo "$(free_mib)" >"$disk_log"
( while sleep 2; do free_mib; done ) >>"$disk_log" &
disk_watch=$!
trap 'kill "$disk_watch" 2>/dev/null || true' EXIT
rm -f "$ROOT/target/e2e-metrics.txt" "$ROOT/target/lab-metrics.txt"
status=0
# The log is kept (target/test-run.log) and the slowest test binaries are
# printed at the end: where the run's time goes.
test_log="$ROOT/target/test-run.log"
set +e
# Lanes side by side: the binaries that start libvirt labs one after
# another (lab slot 0; --lab-lanes 2 adds a second lab lane in slot 1),
# everything else beside them (scripts/run-tests.py).
python3 "$ROOT/scripts/run-tests.py" 2>&1 | tee "$test_log"
cargo_status=${PIPESTATUS[0]}
set -e
[ "$cargo_status" -eq 0 ] || status=$cargo_status
if [ "$fuzz_seconds" -gt 0 ]; then
  fuzz_log="$ROOT/target/guest-fs-fuzz.log"
  step "Fuzzing guest-fs for ${fuzz_seconds}s (scripts/fuzz-guest-fs.sh, log in target/guest-fs-fuzz.log)"
  if "$ROOT/scripts/fuzz-guest-fs.sh" "$fuzz_seconds" >"$fuzz_log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$fuzz_log" || true
  else
    status=1
    # The cause, the seed and the input (scripts/fuzz-guest-fs.sh prints
    # them last); the whole log stays in target/guest-fs-fuzz.log.
    grep -E 'panicked at|ERROR: libFuzzer|deadly signal|Test unit written|^INFO: Seed' "$fuzz_log" | grep -v '^contained' | head -n 20 >&2 || true
    sed -n '/^==== guest-fs fuzzing failed/,$p' "$fuzz_log" >&2
  fi
else
  step "Not fuzzing guest-fs (SENDENSE_FUZZ_SECONDS=0)"
fi
"$ROOT/scripts/api-fuzz.sh" "$ROOT/target/debug/sendense" || status=$?
if [ -f "$ROOT/target/e2e-metrics.txt" ]; then
  step "Measured by the end-to-end suite"
  cat "$ROOT/target/e2e-metrics.txt"
fi
if [ -f "$ROOT/target/lab-metrics.txt" ]; then
  step "Measured by the demo lab tests"
  cat "$ROOT/target/lab-metrics.txt"
fi
step "Slowest test binaries (seconds; whole log in target/test-run.log)"
awk '$1=="Finished" && $3=="in" && $5=="s" {printf "%8.1f  %s\n", $4, $2}' "$test_log" | sort -rn | head -n 15
awk '$1=="Finished" && $3=="in" && $5=="s" {s+=$4} END{printf "%8.1f  in all test binaries (wall time of each, summed)\n", s}' "$test_log"
kill "$disk_watch" 2>/dev/null || true
step "Disk"
echo "free at the start of the tests: $(head -n 1 "$disk_log") MiB; lowest during them: $(sort -n "$disk_log" | head -n 1) MiB"
exit "$status"

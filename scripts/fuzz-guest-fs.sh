#!/usr/bin/env bash
# Fuzzes the guest filesystem reader (guest-fs) for a bounded time:
#   scripts/fuzz-guest-fs.sh [seconds]   (default 60)
# Installs what is missing (the image tools, a nightly toolchain,
# cargo-fuzz), rebuilds the seed images with the real tools, then runs the
# `walk_image` target (open an arbitrary image, list every directory, stat
# every entry, read every file, all capped) starting from the committed seeds
# and regressions. Exits non-zero on a crash, a hang (-timeout) or a memory
# blow-up (-rss_limit_mb); the input is left in guest-fs/fuzz/artifacts/:
# fix the bug, then copy the input into guest-fs/fuzz/regressions/ so that
# `cargo test -p guest-fs` replays it forever.
#
# Wall time on the 2-core build machine: fuzzing time plus about 5 to 7
# minutes from a clean tree (debug test build for the seeds 2-4 min, none
# after scripts/test.sh's `cargo test`, which builds the same binary;
# instrumented release build of the target ~2 min), about 2 seconds once
# built (replaying the corpus counts in the fuzzing time). A
# 600 s run measured 15m22s from a clean tree (95 905 executions, ~160/s;
# the speed falls from ~600/s as the corpus fills with 1 MiB NTFS images).
# A panic inside the third-party `ntfs`/`ext4-view` parsers on guest-fs's
# own parser threads is contained by guest-fs (the caller gets an error):
# the target prints those once per location and goes on.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SECONDS_TO_RUN="${1:-60}"
need_apt e2fsprogs dosfstools mtools ntfs-3g wimtools
command -v rustup >/dev/null || die "rustup is needed for the nightly toolchain cargo-fuzz uses"
if ! rustup toolchain list | grep -q '^nightly'; then
  step "Installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  step "Installing cargo-fuzz (about a minute)"
  cargo install cargo-fuzz --locked --quiet
fi

WORK="$ROOT/target/guest-fs-fuzz"
# SENDENSE_FUZZ_FRESH=1: start from the seeds and regressions only, as a
# clean checkout (CI) does, instead of the corpus earlier runs grew.
[ "${SENDENSE_FUZZ_FRESH:-0}" = 1 ] && rm -rf "$WORK/corpus"
mkdir -p "$WORK/corpus" "$WORK/fresh-seeds"
step "Building seed images with the real tools"
# The package selection of scripts/test.sh's `cargo test`: the same features,
# so after that run the generator is already built (`-p guest-fs` resolves
# other features and recompiles guest-fs's dependencies, ~2 min here).
GUEST_FS_SEEDS="$WORK/fresh-seeds" cargo test -q --locked --workspace --exclude sendense-frontend \
  --test fuzz_corpus -- --ignored --exact write_fuzz_seeds >/dev/null
cp -n "$WORK"/fresh-seeds/* "$ROOT"/guest-fs/fuzz/seeds/* "$WORK/corpus/" 2>/dev/null || true
find "$ROOT/guest-fs/fuzz/regressions" -type f ! -name .gitkeep -exec cp -n {} "$WORK/corpus/" \;

# A failure prints the seed (SENDENSE_FUZZ_SEED=S replays the same mutations
# of the same corpus) and the failing input itself, minimised: the seed
# images are rebuilt by every run, so another machine's input cannot be
# found again from its seed alone.
SEED="${SENDENSE_FUZZ_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}"
case "$SEED" in ''|*[!0-9]*) die "SENDENSE_FUZZ_SEED must be a positive whole number, not '$SEED'" ;; esac
ARTIFACTS="$ROOT/guest-fs/fuzz/artifacts/walk_image"
mkdir -p "$ARTIFACTS"
before="$(mktemp)"
trap 'rm -f "$before"' EXIT

step "Fuzzing guest-fs for ${SECONDS_TO_RUN}s (seed $SEED)"
cd "$ROOT/guest-fs/fuzz"
status=0
# No sanitizer: every parser is safe Rust, and ASan halves the speed.
cargo +nightly fuzz run --sanitizer none walk_image "$WORK/corpus" -- \
  -seed="$SEED" -max_total_time="$SECONDS_TO_RUN" -max_len=1100000 -timeout=20 -rss_limit_mb=2048 \
  -print_final_stats=1 || status=$?
if [ "$status" != 0 ]; then
  # What the caller's log tail must show: the cause, the seed, and the
  # input itself (minimised, gzip + base64) so that a failure on another
  # machine can be replayed here.
  target_bin="$ROOT/guest-fs/fuzz/target/x86_64-unknown-linux-gnu/release/walk_image"
  printf '\n==== guest-fs fuzzing failed (exit %s, seed %s) ====\n' "$status" "$SEED" >&2
  for input in $(find "$ARTIFACTS" -type f -newer "$before" 2>/dev/null); do
    printf 'input: %s (%s bytes)\n' "$input" "$(stat -c %s "$input")" >&2
    printf 'replayed alone:\n' >&2
    "$target_bin" -rss_limit_mb=2048 -timeout=20 "$input" 2>&1 \
      | grep -E 'panicked at|ERROR: libFuzzer|overflow|memory allocation|index out of|attempt to|SUMMARY' \
      | grep -v '^contained' | head -n 12 >&2 || true
    small="$input.min"
    "$target_bin" -minimize_crash=1 -max_total_time=60 -rss_limit_mb=2048 -timeout=20 \
      -exact_artifact_path="$small" "$input" >/dev/null 2>&1 || true
    [ -s "$small" ] || small="$input"
    size="$(gzip -9c "$small" | wc -c)"
    if [ "$size" -le 49152 ]; then
      printf 'input (%s bytes minimised; gzip | base64 -d to get it back):\n' "$(stat -c %s "$small")" >&2
      gzip -9c "$small" | base64 -w 0 >&2
      printf '\n' >&2
    else
      printf 'input too large to print (%s bytes gzipped); replay with the seed\n' "$size" >&2
    fi
  done
  printf 'fuzzing found a problem: see %s (seed %s)\n' "$ARTIFACTS" "$SEED" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Benchmark the backup engine against restic and borg on one workload.
#
#   scripts/bench-engine.sh [--size 2G] [--runs 5] [--workdir DIR] [--with-8g]
#
# Builds `sendense` (release), installs restic and borgbackup from Debian if
# they are missing, makes the image with ../shared/bench/mkimage.py (or
# $SENDENSE_BENCH_DIR), mutates a copy by 2 % with mutate.py (which writes the
# changed ranges), then times full backup, incremental with and without
# changed ranges, and restore for each tool (warm cache, medians of --runs),
# prints a table and, last, one JSON line of ratios. See scripts/bench-engine.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq restic borgbackup >/dev/null
    else
        echo "bench-engine: restic and borg are needed: sudo apt-get install restic borgbackup" >&2
        exit 1
    fi
fi
(cd "$root" && cargo build --release -p sendense --quiet)
exec python3 "$here/bench-engine.py" --sendense "$root/target/release/sendense" "$@"

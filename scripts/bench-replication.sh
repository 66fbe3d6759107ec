#!/usr/bin/env bash
# Benchmark replication through the real server's API.
#
#   scripts/bench-replication.sh [--runs 3] [--rounds 3] [--workdir DIR] [--check] [--keep]
#                                [--target KEY=VALUE]
#
# Builds `sendense` (release), installs what is missing (qemu-utils from
# Debian), makes a 2 GiB VM disk with the standard workload generator
# (/work/shared/bench/mkimage.py, fixed seed; SENDENSE_BENCH_TOOLS or
# --tools for another directory) as a qcow2 on a "prod" KVM host directory,
# runs `sendense serve` on a free local port and replicates the VM to a "dr"
# host through the API, each run timing: the full sync (against `qemu-img
# convert -O qcow2` of the same disk), incremental syncs after 2% guest-like
# writes through qemu-io (bytes changed, read, written; against re-copying
# the whole disk), test failover and its end, live failover (downtime and its
# steps) and rollback with sync back. Warm page cache for syncs and
# references. Prints a table and, last, one JSON line of ratios to the
# targets (> 1 is better than the target); `--check` exits non-zero when one
# is missed. See scripts/bench-replication.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

missing=()
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v qemu-io >/dev/null || missing+=(qemu-utils)
command -v qemu-nbd >/dev/null || missing+=(qemu-utils)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
    else
        echo "bench-replication: needed: sudo apt-get install qemu-utils" >&2
        exit 1
    fi
fi
(cd "$root" && cargo build --release -p sendense --quiet)
target="${CARGO_TARGET_DIR:-$root/target}"
exec python3 "$here/bench-replication.py" --sendense "$target/release/sendense" "$@"

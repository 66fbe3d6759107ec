#!/usr/bin/env bash
# Benchmark replication of a running guest between two real libvirt hosts,
# through the real server's API.
#
#   scripts/bench-replication.sh [--runs 3] [--rounds 3] [--workdir DIR] [--check] [--keep]
#                                [--target KEY=VALUE]
#
# Installs libvirt and QEMU and makes the guest kit when missing (root),
# builds `sendense` (release), makes a 2 GiB data disk with the standard
# workload generator (/work/shared/bench/mkimage.py, fixed seed;
# SENDENSE_BENCH_TOOLS or --tools for another directory) for a guest on a
# "prod" libvirt host, runs `sendense serve` on a free local port and
# replicates the guest to a "dr" host through the API, each run timing: the
# full sync (against `qemu-img convert -O qcow2` of the same disk),
# incremental syncs after the guest writes 2% of its disk (bytes it wrote,
# listed, read, written; against re-copying the whole disk), a sync with
# nothing to copy (the fixed cost), test failover to the test VM's guest up
# and its end, live failover (downtime to the replica's guest up, and its
# steps) and rollback with sync back; then instant recovery of a guest with
# a 2 GiB and an 8 GiB data disk (request to the guest up on dr, finalize
# throughput while it runs). Prints a table and, last, one JSON
# line of ratios to the targets (> 1 is better than the target); `--check`
# exits non-zero when one is missed. Leaves no host, guest or bridge
# running. See scripts/bench-replication.py.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_libvirt
need_guest_kit
(cd "$ROOT" && cargo build --release -p sendense --quiet)
target="${CARGO_TARGET_DIR:-$ROOT/target}"
exec python3 "$ROOT/scripts/bench-replication.py" --sendense "$target/release/sendense" "$@"

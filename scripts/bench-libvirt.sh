#!/usr/bin/env bash
# Benchmark backups of a running guest on a real libvirt host against
# `qemu-img convert` of the same image, the incremental's bytes read against
# the bytes the guest wrote, and restore-to-boot time.
#
#   scripts/bench-libvirt.sh [--size 2G] [--blocks 512] [--workdir DIR]
#
# Installs libvirt and QEMU and makes the guest kit when missing (root),
# builds `sendense` (release), then runs scripts/bench-libvirt.py. Leaves no
# host, guest or bridge running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_libvirt
need_guest_kit
(cd "$ROOT" && cargo build --release -p sendense --quiet)
exec python3 "$ROOT/scripts/bench-libvirt.py" --sendense "$ROOT/target/release/sendense" "$@"

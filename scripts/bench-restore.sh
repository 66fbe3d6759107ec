#!/usr/bin/env bash
# Benchmark file-level and full VM restore through the real server's API.
#
#   scripts/bench-restore.sh [--runs 3] [--workdir DIR] [--check] [--keep]
#
# Builds `sendense` (release), installs what is missing (restic, sfdisk,
# e2fsprogs, qemu-utils from Debian), makes a 2 GiB VM disk (GPT, one ext4
# partition built with `mkfs.ext4 -d` and indexed by `e2fsck -D`: a
# directory of 10,000 files, two 256 MiB incompressible files, a 64 MiB
# log) as a qcow2, defines the VM on a libvirt host (`sendense lab hosts
# start`: two private libvirt daemons, a production and a DR host), runs `sendense serve` on a free local port and backs the VM up
# through the API, then times, each run: opening a file-level session,
# listing the 10,000-entry directory (first page, every page at the maximum
# page size), downloading a large file and two directories (tar), and a full
# VM restore onto a second host, against `restic restore` of the same raw
# image (warm page cache for both). Prints a table and, last, one JSON line
# of ratios to the targets (> 1 is better than the target); `--check` exits
# non-zero when one is missed. See scripts/bench-restore.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v sfdisk >/dev/null || [ -x /usr/sbin/sfdisk ] || missing+=(fdisk)
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bench-restore: needed: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
source "$here/lib.sh"
need_libvirt
(cd "$root" && cargo build --release -p sendense --quiet)
target="${CARGO_TARGET_DIR:-$root/target}"
exec python3 "$here/bench-restore.py" --sendense "$target/release/sendense" "$@"

#!/usr/bin/env bash
# Benchmark the backup engine against restic and borg on one workload.
#
#   scripts/bench-engine.sh [--size 2G] [--runs 5] [--workdir DIR] [--with-8g]
#       [--change PERCENT] [--write 64K] [--inc-only] [--tools sendense,restic,borg]
#   (issue 18's workload: --size 1536M --change 3 --write 64K)
#   scripts/bench-engine.sh --repo s3|azure [--size 2G] [--runs 1] [--workdir DIR]
#
# Builds `sendense` (release), installs restic and borgbackup from Debian if
# they are missing, makes the image with ../shared/bench/mkimage.py (or
# $SENDENSE_BENCH_DIR), mutates a copy by 2 % (--change) in scattered 64 KiB
# writes with mutate.py (which writes the changed ranges), then times full
# backup, incremental with and without changed ranges, and restore for each
# tool (warm cache, medians of --runs; --inc-only: the backups only), prints
# a table, the load average before and after, every run's incremental times
# with the ratio to restic's and, last, one JSON line of ratios. See
# scripts/bench-engine.py.
#
# --repo s3: the same workload on moto (S3, installed like the tests do:
# scripts/lib.sh need_moto), started here on a free loopback port without
# authentication (any key works) and killed when this script exits; Sendense
# and restic's S3 backend side by side in separate buckets of that server:
# full, incremental, restore, requests per bucket from moto's access log,
# peak RSS. --repo azure: Sendense alone on Azurite (need_azurite; restic
# 0.14's azure backend cannot be pointed at an emulator). See scripts/bench-engine-object.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

repo=local
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = --repo ]; then repo="${args[i + 1]:-}"; fi
done
case "$repo" in
    local) ;;
    s3 | azure)
        command -v restic >/dev/null || {
            if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq restic >/dev/null
            else echo "bench-engine: restic is needed: sudo apt-get install restic" >&2; exit 1; fi
        }
        # shellcheck source=scripts/lib.sh
        source "$here/lib.sh"
        need_moto # its Python has boto3 (bucket sizes), also for --repo azure
        [ "$repo" = azure ] && need_azurite
        (cd "$root" && cargo build --release -p sendense --quiet)
        svc="$(mktemp -d /tmp/sendense-bench-svc.XXXXXX)"
        server_pid=
        stop_server() {
            if [ -n "$server_pid" ]; then kill -- "-$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
            rm -rf "$svc"
        }
        trap stop_server EXIT
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        if [ "$repo" = s3 ]; then
            setsid "$SENDENSE_MOTO" -H 127.0.0.1 -p "$port" >"$svc/server.log" 2>&1 &
            endpoint="http://127.0.0.1:$port"
            where=(--server-log "$svc/server.log")
        else
            setsid "$SENDENSE_AZURITE" --blobHost 127.0.0.1 --blobPort "$port" --location "$svc/data" \
                --skipApiVersionCheck --loose >"$svc/server.log" 2>&1 &
            endpoint="http://127.0.0.1:$port/devstoreaccount1"
            where=(--server-data "$svc/data")
        fi
        server_pid=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            kill -0 "$server_pid" 2>/dev/null || { cat "$svc/server.log" >&2; exit 1; }
            sleep 0.2
        done
        "$SENDENSE_MOTO_PYTHON" "$here/bench-engine-object.py" --sendense "$root/target/release/sendense" \
            --endpoint "$endpoint" "${where[@]}" "$@"
        exit $?
        ;;
    *) echo "bench-engine: --repo local, s3 or azure" >&2; exit 2 ;;
esac

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

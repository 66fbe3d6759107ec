#!/usr/bin/env bash
# Runs Sendense: installs what is missing, builds the cockpit and the server
# (release), then starts `sendense serve` with the demo lab and its real
# libvirt hosts and guests (--demo-lab --lab-guests; SENDENSE_DEMO_LAB=false
# skips it). Flags are passed to `serve`
# (--listen, --data-dir, --tls ...); SENDENSE_LISTEN and SENDENSE_DATA_DIR work too.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_apt qemu-utils e2fsprogs dosfstools mtools ntfs-3g wimtools
need_libvirt
need_guest_kit
need_web_tools
build_web
step "Building the server (release)"
cargo build --release --locked -p sendense --quiet
step "Starting the server (Ctrl-C stops it)"
# The demo lab, with its two libvirt hosts and booting guests (stopped with
# the server on Ctrl-C). An explicit choice (the flag given, or
# SENDENSE_DEMO_LAB set) wins.
lab=(--demo-lab --lab-guests)
if [ -n "${SENDENSE_DEMO_LAB:-}" ] || [[ " $* " == *" --demo-lab "* ]]; then lab=(); fi
exec "$ROOT/target/release/sendense" serve --web-dir "$ROOT/dist" "${lab[@]}" "$@"

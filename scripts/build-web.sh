#!/usr/bin/env bash
# Builds the cockpit (frontend/, wasm) into dist/.
source "$(dirname "$0")/lib.sh"
need_web_tools
build_web

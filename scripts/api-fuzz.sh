#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document with schemathesis (from
# PyPI, into target/schemathesis-venv): thousands of generated requests,
# valid and invalid, against a fresh server signed in as admin. Fails when
# any answer is a 5xx. Bounded in time (examples per operation, a timeout).
#
#   scripts/api-fuzz.sh [SENDENSE_BINARY]   (default: target/debug/sendense)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SCHEMATHESIS_VERSION=4.32.5
bin="${1:-$ROOT/target/debug/sendense}"
[ -x "$bin" ] || die "no server binary at $bin: run cargo test or cargo build -p sendense first"
need_apt python3-venv
venv="$ROOT/target/schemathesis-venv"
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  step "Installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
password="api-fuzz-$(date +%s%N)"
SENDENSE_ADMIN_PASSWORD="$password" SENDENSE_DEMO_LAB=false \
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" --web-dir "$data/no-web" >"$data/server.log" 2>&1 &
server=$!
cleanup() { kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.1; done
token="$(curl -fs "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

step "Fuzzing the API with schemathesis (no answer may be a 5xx)"
# Signing out and emergency stop would only end the session or the jobs the
# run itself needs; every other operation is exercised.
timeout 600 "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port/api/v1" -H "Authorization: Bearer $token" \
  --checks not_a_server_error --max-examples 15 --generation-deterministic --request-timeout 10 \
  --exclude-path /auth/logout --exclude-path /jobs/emergency-stop --no-color 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
  step "Server log (last 40 lines)"
  tail -n 40 "$data/server.log" >&2
fi
exit "$status"

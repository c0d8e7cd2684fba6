#!/usr/bin/env bash
# Reproduces the README's load figures: builds the relay and relay-load, then
# for each configuration starts a stand-in upstream (relay-load -serve-bare)
# and a relay on a fresh config directory, and drives it next to a bare
# net/http server in the same run. Everything listens on 127.0.0.1; every
# process started here is stopped by PID.
#
#   cmd/relay-load/bench.sh            # all configurations, 64 connections, 10 s each
#   CONNS=128 DURATION=20s cmd/relay-load/bench.sh ingest-default
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/relay-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/relay" ./cmd/relay
go build -o "$work/relay-load" ./cmd/relay-load
conns=${CONNS:-64}
duration=${DURATION:-10s}

declare -A configs=(
  [ingest-default]=$'worker:\n  enabled: false\n'
  [ingest-always]=$'worker:\n  enabled: false\njetstream:\n  sync: always\n'
  [full-default]=''
  [full-always]=$'jetstream:\n  sync: always\n'
  [full-scrub]=$'scrub:\n  data_scrubbing:\n    scrub_data: true\n    scrub_defaults: true\n    scrub_ip_addresses: true\n'
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ingest-default ingest-always full-default full-always full-scrub)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

for name in "${names[@]}"; do
  [ -n "${configs[$name]+x}" ] || { echo "unknown configuration $name" >&2; exit 2; }
  dir="$work/$name"; mkdir -p "$dir/.relay"
  printf '%s' "${configs[$name]}" > "$dir/.relay/config.yml"
  "$work/relay-load" -serve-bare > "$dir/upstream.addr" & up_pid=$!
  for _ in $(seq 50); do [ -s "$dir/upstream.addr" ] && break; sleep 0.1; done
  port=$(free_port)
  (cd "$dir" && exec "$work/relay" run --mode proxy --upstream "http://$(cat "$dir/upstream.addr")" --port "$port") > "$dir/relay.log" 2>&1 & relay_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/relay/healthcheck/ready/" > /dev/null && break; sleep 0.1; done
  echo "== $name"
  "$work/relay-load" -url "http://127.0.0.1:$port" -c "$conns" -d "$duration" || true
  kill "$relay_pid"; wait "$relay_pid" || true
  kill "$up_pid"; wait "$up_pid" 2>/dev/null || true
done

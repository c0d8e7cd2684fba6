#!/usr/bin/env bash
# The README's performance table in one command. Builds the relay and
# relay-load, then drives, one after the other on the same machine in the
# same run:
#   bare          net/http reading the body and answering 200 (relay-load -serve-bare)
#   forwarder     a naive forwarder: synchronous POST of each request to the
#                 upstream, shared client, 256 idle conns (relay-load -serve-forward)
#   full-default  the whole relay, default config, forwarding to the upstream
#   ingest-default the relay with worker.enabled: false (acks after JetStream)
#   full-always   the whole relay with jetstream.sync: always
# (and, when named, full-scrub, ingest-always, and any of them with -nogroup:
# jetstream.publish_group_max: 1, every envelope published alone), each with a fresh config
# directory, against one stand-in upstream (relay-load -serve-bare, which
# counts what it receives). Then the one-connection latency of bare and of
# the whole relay.
#
# The table: accepted req/s; for the whole relay also delivered/s (what the
# upstream received during the window) — the ratio uses the smaller of the
# two, so a relay that only fills its stream does not look fast; p50/p99 of
# the acknowledgement; the relay's CPU µs per envelope (utime+stime from
# /proc over the run, divided by envelopes delivered, or acknowledged for
# ingest alone). The ratios and the CPU figure are what to compare across
# machines; req/s move with whatever else the machine does.
#
#   cmd/relay-load/bench.sh                       # the table, 64 connections, 10 s each
#   CONNS=128 DURATION=20s cmd/relay-load/bench.sh full-default ingest-default
#   PROFILE=relay-cpu cmd/relay-load/bench.sh     # also a 8 s CPU profile of the whole
#       relay under load (-tags pprof): relay-cpu.pprof and relay-cpu.top, of the
#       first configuration run (full-default, or e.g. ingest-default when named first)
#
# Everything listens on 127.0.0.1; every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
. cmd/relay-load/lib.sh bench
conns=${CONNS:-64}
duration=${DURATION:-10s}
load=("$work/relay-load" -bare=false -c "$conns" -d "$duration")

declare -A configs=(
  [ingest-default]=$'worker:\n  enabled: false\n'
  [ingest-always]=$'worker:\n  enabled: false\njetstream:\n  sync: always\n'
  [full-default]=''
  [full-always]=$'jetstream:\n  sync: always\n'
  # The same without the group publish (jetstream.publish_group_max: 1): every
  # envelope its own stream message, as before ingest/group.go.
  [ingest-default-nogroup]=$'worker:\n  enabled: false\njetstream:\n  publish_group_max: 1\n'
  [ingest-always-nogroup]=$'worker:\n  enabled: false\njetstream:\n  sync: always\n  publish_group_max: 1\n'
  [full-default-nogroup]=$'jetstream:\n  publish_group_max: 1\n'
  [full-always-nogroup]=$'jetstream:\n  sync: always\n  publish_group_max: 1\n'
  [full-scrub]=$'scrub:\n  data_scrubbing:\n    scrub_data: true\n    scrub_defaults: true\n    scrub_ip_addresses: true\n'
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(full-default ingest-default full-always)
for name in "${names[@]}"; do
  [ -n "${configs[$name]+x}" ] || { echo "unknown configuration $name (one of: ${!configs[*]})" >&2; exit 2; }
done


# serve FILE ARGS...: start relay-load as a server, wait for the address it
# prints into FILE, leave its PID in $served.
serve() {
  local file=$1; shift
  "$work/relay-load" "$@" > "$file" & served=$!
  pids+=("$served")
  for _ in $(seq 50); do [ -s "$file" ] && break; sleep 0.1; done
  [ -s "$file" ] || { echo "relay-load $* did not start" >&2; exit 1; }
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

rows="$work/rows.tsv"; : > "$rows"
serve "$work/upstream.addr" -serve-bare; up_pid=$served; upstream="http://$(cat "$work/upstream.addr")"
serve "$work/bare.addr" -serve-bare; bare_pid=$served
echo "== bare" >&2
"${load[@]}" -url "http://$(cat "$work/bare.addr")" -pid "$bare_pid" -row bare >> "$rows"
serve "$work/forward.addr" -serve-forward "$upstream"; fw_pid=$served
echo "== forwarder" >&2
"${load[@]}" -url "http://$(cat "$work/forward.addr")" -pid "$fw_pid" -count-url "$upstream/_count" -row forwarder >> "$rows"
stop "$fw_pid"

# relay NAME: start the relay with configuration NAME; leaves $relay_pid, $relay_url.
relay() {
  local name=$1 dir="$work/$1" port
  mkdir -p "$dir/.relay"
  printf '%s' "${configs[$name]}" > "$dir/.relay/config.yml"
  port=$(free_port)
  pprof_port=$(free_port)
  (cd "$dir" && RELAY_PPROF_ADDR="127.0.0.1:$pprof_port" exec "$work/relay" run --mode proxy --upstream "$upstream" --port "$port") > "$dir/relay.log" 2>&1 & relay_pid=$!
  pids+=("$relay_pid")
  relay_url="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$relay_url/api/relay/healthcheck/ready/" > /dev/null && return; sleep 0.1; done
  echo "relay $name did not become ready; its log: $dir/relay.log" >&2; cat "$dir/relay.log" >&2; exit 1
}

for name in "${names[@]}"; do
  echo "== $name" >&2
  relay "$name"
  count=()
  [[ $name == ingest* ]] || count=(-count-url "$upstream/_count")
  if [ -n "${PROFILE:-}" ] && [ "$name" = "${names[0]}" ]; then
    # The profile covers 8 s of the measured window (after the 2 s warm-up).
    (sleep 3; curl -sf -o "$PROFILE.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=8") & prof_pid=$!
  fi
  "${load[@]}" -url "$relay_url" -pid "$relay_pid" "${count[@]}" -row "$name" >> "$rows" || echo "$name	failed" >> "$rows"
  if [ -n "${prof_pid:-}" ]; then
    wait "$prof_pid" && go tool pprof -top -nodecount=40 "$work/relay" "$PROFILE.pprof" > "$PROFILE.top" 2>/dev/null \
      && echo "CPU profile: $PROFILE.pprof, top: $PROFILE.top" >&2
    prof_pid=
  fi
  if [ "$name" = full-default ]; then
    echo "== one connection: full-default, bare" >&2
    "$work/relay-load" -bare=false -c 1 -d 5s -url "$relay_url" -row full-default-c1 >> "$rows"
    "$work/relay-load" -bare=false -c 1 -d 5s -url "http://$(cat "$work/bare.addr")" -row bare-c1 >> "$rows"
  fi
  stop "$relay_pid"
done

# The table. Baselines: the forwarder for the whole relay, bare for ingest.
awk -F'\t' -v conns="$conns" -v dur="$duration" '
  NF < 7 { failed[++nf] = $1; next }
  { name[++n] = $1; rps[$1] = $2; del[$1] = $3; p50[$1] = $4; p99[$1] = $5; cpu[$1] = $6; errs[$1] = $7 }
  END {
    printf "%d connections, %s per target, same run\n\n", conns, dur
    printf "| target | req/s | delivered/s | ratio | p50 | p99 | relay CPU µs/envelope | errors |\n|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n; i++) {
      t = name[i]; if (t ~ /-c1$/) continue
      eff = rps[t]; if (del[t] > 0 && del[t] < eff) eff = del[t]
      base = (t ~ /^full/ || t == "forwarder") ? "forwarder" : "bare"
      ratio = "1"
      if (t != base && rps[base] > 0) {
        beff = rps[base]; if (del[base] > 0 && del[base] < beff) beff = del[base]
        ratio = sprintf("%.2f of %s", eff / beff, base)
      }
      printf "| %s | %.0f | %s | %s | %.2f ms | %.2f ms | %s | %d |\n", t, rps[t], (del[t] > 0 ? sprintf("%.0f", del[t]) : "–"), ratio, p50[t]/1000, p99[t]/1000, (cpu[t] > 0 ? cpu[t] : "–"), errs[t]
    }
    if (("full-default-c1" in p50) && ("bare-c1" in p50) && p50["bare-c1"] > 0)
      printf "\none connection: relay p50 %.2f ms (p99 %.2f ms), bare p50 %.2f ms (p99 %.2f ms): %.1fx\n", p50["full-default-c1"]/1000, p99["full-default-c1"]/1000, p50["bare-c1"]/1000, p99["bare-c1"]/1000, p50["full-default-c1"]/p50["bare-c1"]
    for (i = 1; i <= nf; i++) printf "FAILED: %s\n", failed[i]
  }' "$rows"

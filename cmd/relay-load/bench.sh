#!/usr/bin/env bash
# The README's performance table in one command. Builds the relay and
# relay-load, then measures, on the same machine in the same run, each
# relay configuration in turns with its baseline (relay-load -pair: 1 s
# windows, ABBA…, never both loaded at once, until each was measured for
# DURATION):
#   full-default   the whole relay, default config, forwarding to a stand-in
#                  upstream (relay-load -serve-bare, which counts what it receives)
#   full-always    the whole relay with jetstream.sync: always
#     against: the forwarder — a naive forwarder, a synchronous POST of each
#     request to an upstream of its own, shared client, 256 idle conns
#     (relay-load -serve-forward)
#   ingest-default the relay with worker.enabled: false (acks after JetStream)
#     against: bare — net/http reading the body and answering 200
#     (relay-load -serve-bare)
# (and, when named, full-scrub, ingest-always, and any of them with -nogroup:
# jetstream.publish_group_max: 1, every envelope published alone), each with
# a fresh config directory; after full-default the one-connection latency of
# the whole relay and of bare, also in turns. All of that is one round; a
# run is ROUNDS rounds (3), and the table gives medians over them (the
# ratios: the median of each round's ratio), then every round's ratios.
#
# The table: accepted req/s; for the forwarding rows also delivered/s (what
# the upstream received from the window's start until it went quiet after
# it, over that time) — the ratio uses the smaller of the two, so a relay
# that only fills its stream does not look fast; p50/p99 of the
# acknowledgement; CPU µs per envelope of the measured process (utime+stime
# from /proc over its windows, divided by envelopes delivered, or answered
# for ingest alone and bare). The ratios and the CPU figure are what to
# compare across machines; req/s move with whatever else the machine does.
#
#   cmd/relay-load/bench.sh                       # the table, 64 connections, 10 s each
#   CONNS=128 DURATION=20s cmd/relay-load/bench.sh full-default ingest-default
#   ROUNDS=1 cmd/relay-load/bench.sh              # one round instead of three
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
rounds=${ROUNDS:-3}
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
# The forwarder has an upstream of its own: it and the whole relay take
# turns, and each one's deliveries are counted apart.
serve "$work/fw-upstream.addr" -serve-bare; fw_upstream="http://$(cat "$work/fw-upstream.addr")"
serve "$work/forward.addr" -serve-forward "$fw_upstream"; fw_pid=$served

# relay NAME: start the relay with configuration NAME (a fresh directory each
# time); leaves $relay_pid, $relay_url.
relay() {
  local name=$1 dir port
  dir=$(mktemp -d "$work/$1-XXXX")
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

# target NAME ROUND: one relay row (a fresh relay with configuration NAME),
# and after full-default the one-connection rows.
target() {
  local name=$1 round=$2
  echo "== round $round/$rounds: $name" >&2
  relay "$name"
  if [ -n "${PROFILE:-}" ] && [ "$name" = "${names[0]}" ] && [ "$round" = 1 ]; then
    # An 8 s profile of the relay process, after its warm-up: it covers the
    # relay's windows (the baseline's turns cost the relay nothing).
    (sleep 5; curl -sf -o "$PROFILE.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=8") & prof_pid=$!
  fi
  # The relay and its baseline take turns in 1 s windows (ABBA…), never
  # loaded at once, until each was measured for $duration: this machine's
  # speed moves within seconds, and a ratio of two rows a minute apart
  # measured that as much as the relay (relay-load's drivePair). A
  # forwarding relay's window lasts until its upstream went quiet: its
  # backlog is forwarded in its own turn.
  if [[ $name == ingest* ]]; then
    "${load[@]}" -url "$relay_url" -pid "$relay_pid" -pair "http://$(cat "$work/bare.addr")" -pair-pid "$bare_pid" \
      -row "$name#$round" -pair-row "bare:$name#$round" >> "$rows" || echo "$name#$round	failed" >> "$rows"
  else
    "${load[@]}" -url "$relay_url" -pid "$relay_pid" -count-url "$upstream/_count" \
      -pair "http://$(cat "$work/forward.addr")" -pair-pid "$fw_pid" -pair-count-url "$fw_upstream/_count" \
      -row "$name#$round" -pair-row "forwarder:$name#$round" >> "$rows" || echo "$name#$round	failed" >> "$rows"
  fi
  if [ -n "${prof_pid:-}" ]; then
    wait "$prof_pid" && go tool pprof -top -nodecount=40 "$work/relay" "$PROFILE.pprof" > "$PROFILE.top" 2>/dev/null \
      && echo "CPU profile: $PROFILE.pprof, top: $PROFILE.top" >&2
    prof_pid=
  fi
  if [ "$name" = full-default ]; then
    echo "== round $round/$rounds: one connection: full-default, bare" >&2
    "$work/relay-load" -bare=false -c 1 -d 5s -url "$relay_url" -pair "http://$(cat "$work/bare.addr")" \
      -row "full-default-c1#$round" -pair-row "bare-c1#$round" >> "$rows"
  fi
  stop "$relay_pid"
}

# Rounds: every configuration once per round, each in turns with its
# baseline (bare for ingest alone, the forwarder for the whole relay). The
# table gives the median over the rounds of each round's ratio, and every
# round's figures below it.
for round in $(seq "$rounds"); do
  for name in "${names[@]}"; do target "$name" "$round"; done
done
stop "$fw_pid"

# The table. Baselines: the forwarder for the whole relay, bare for ingest,
# each from the same round. Every figure of the first table is the median
# over the rounds (the ratio: of the rounds' ratios).
awk -F'\t' -v conns="$conns" -v dur="$duration" -v rounds="$rounds" '
  function median(a, k,    i, j, t, m) {
    m = 0
    for (i = 1; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (k == 0) return -1
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  function eff(key) { return (del[key] > 0 && del[key] < rps[key]) ? del[key] : rps[key] }
  function isbase(t) { return t ~ /^(bare|forwarder):/ }
  NF < 7 { failed[++nf] = $1; next }
  {
    split($1, p, "#"); t = p[1]; r = p[2] + 0
    if (!(t in seen)) { seen[t] = 1; order[++n] = t }
    k = t "#" r; rps[k] = $2; del[k] = $3; p50[k] = $4; p99[k] = $5; cpu[k] = $6; errs[t] += $7; have[k] = 1
  }
  END {
    printf "%d connections, %s per target, %d round(s) (each row in turns with its baseline); medians over the rounds\n\n", conns, dur, rounds
    printf "| target | req/s | delivered/s | ratio | p50 | p99 | CPU µs/envelope | errors |\n|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n; i++) {
      t = order[i]; if (t ~ /-c1$/) continue
      base = (t ~ /^full/) ? ("forwarder:" t) : ("bare:" t)
      if (isbase(t)) base = t
      delete A; delete D; delete R; delete P5; delete P9; delete C; na = nd = nr = nc = 0
      for (r = 1; r <= rounds; r++) {
        k = t "#" r; if (!(k in have)) continue
        A[++na] = rps[k]; P5[na] = p50[k]; P9[na] = p99[k]
        if (del[k] > 0) D[++nd] = del[k]
        if (cpu[k] > 0) C[++nc] = cpu[k]
        b = base "#" r
        if (t != base && (b in have) && eff(b) > 0) { R[++nr] = eff(k) / eff(b); rr[t, r] = R[nr] }
      }
      if (na == 0) continue
      ratio = (t == base) ? "1" : (nr > 0 ? sprintf("%.2f of %s", median(R, nr), substr(base, 1, index(base, ":") - 1)) : "–")
      label = isbase(t) ? sprintf("%s (in turns with %s)", substr(t, 1, index(t, ":") - 1), substr(t, index(t, ":") + 1)) : t
      printf "| %s | %.0f | %s | %s | %.2f ms | %.2f ms | %s | %d |\n", label, median(A, na), (nd > 0 ? sprintf("%.0f", median(D, nd)) : "–"), ratio, median(P5, na)/1000, median(P9, na)/1000, (nc > 0 ? sprintf("%.1f", median(C, nc)) : "–"), errs[t]
    }
    # One connection: the median of the rounds p50 ratios.
    nr = 0; delete R
    for (r = 1; r <= rounds; r++) {
      a = "full-default-c1#" r; b = "bare-c1#" r
      if ((a in have) && (b in have) && p50[b] > 0) { R[++nr] = p50[a] / p50[b]; c1[r] = sprintf("%.2f / %.2f ms, %.1fx", p50[a]/1000, p50[b]/1000, R[nr]) }
    }
    if (nr > 0) printf "\none connection, relay p50 / bare p50 (median over the rounds): %.1fx\n", median(R, nr)
    {
      printf "\nEach round (ratio to the same round'"'"'s baseline, relay CPU µs per envelope in brackets):\n\n| round |"
      for (i = 1; i <= n; i++) { t = order[i]; if (!isbase(t) && t !~ /-c1$/) printf " %s |", t }
      if (nr > 0) printf " one connection |"
      printf "\n|---|"
      for (i = 1; i <= n; i++) { t = order[i]; if (!isbase(t) && t !~ /-c1$/) printf "---|" }
      if (nr > 0) printf "---|"
      printf "\n"
      for (r = 1; r <= rounds; r++) {
        printf "| %d |", r
        for (i = 1; i <= n; i++) {
          t = order[i]; if (isbase(t) || t ~ /-c1$/) continue
          k = t "#" r
          cell = "–"
          if ((t, r) in rr) {
            cell = sprintf("%.2f (%.0f µs", rr[t, r], cpu[k])
            if (("bare:" k) in have) cell = cell sprintf("; bare %.0f µs", cpu["bare:" k])
            if (("forwarder:" k) in have) cell = cell sprintf("; forwarder %.0f µs", cpu["forwarder:" k])
            cell = cell ")"
          }
          printf " %s |", cell
        }
        if (nr > 0) printf " %s |", ((r in c1) ? c1[r] : "–")
        printf "\n"
      }
    }
    for (i = 1; i <= nf; i++) printf "FAILED: %s\n", failed[i]
  }' "$rows"

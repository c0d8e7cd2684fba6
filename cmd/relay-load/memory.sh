#!/usr/bin/env bash
# The real binary's memory through a long outage (issues 15 and 16): the
# upstream is down while relay-load sends envelopes of SIZE bytes until
# about TOTAL is stored — the stream full at its jetstream.max_bytes
# (TOTAL/2), the rest in the spool (spool.max_disk_size TOTAL/2) once the
# worker moved the stream there after the outage grace — then the upstream
# comes back (relay-load -serve-bare on the port the relay was given) and
# everything drains. VmRSS and RssAnon of the relay process are sampled from
# /proc every 0.5 s and reported by phase:
#   idle   started, no load
#   fill   load, nothing in the spool yet (the stream filling)
#   move   load, the spool growing: the worker moves the stream into the spool
#   drain  the upstream back, until the upstream stopped receiving
#   after  idle again
# with the disk the config directory takes before and after the drain.
#
#   cmd/relay-load/memory.sh                        # 200 KB envelopes, 2 GiB
#   TOTAL_MB=400 cmd/relay-load/memory.sh           # the quick comparison
#   PROFILE=heap cmd/relay-load/memory.sh           # also heap profiles (-tags pprof)
#                                                   # at the move's and the drain's midpoints
#   SAMPLES=/tmp/m.tsv cmd/relay-load/memory.sh     # keep the samples (phase, VmRSS kB,
#                                                   # RssAnon kB every 0.5 s)
#
# Long: it moves TOTAL through loopback twice. Everything listens on
# 127.0.0.1; every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${SIZE:-200000}
total_mb=${TOTAL_MB:-2048}
grace=${GRACE:-20s} # in seconds: 20s
conns=${CONNS:-16}
half_mb=$((total_mb / 2))
. cmd/relay-load/lib.sh memory

# du fails (and set -e would end the run) when a file it listed is gone
# before it stats it — JetStream renames and removes block files while it
# writes — but it still prints the total of the rest.
disk_mb() { { du -sm "$work/cfg/.relay" 2>/dev/null || true; } | cut -f1; }
spool_mb() { { du -smc "$work/cfg/.relay"/spool* 2>/dev/null || true; } | tail -1 | cut -f1; }

# A ~SIZE-byte event: the payload in an extra field, so the relay parses and
# forwards it as an event (the limit on one event is max_event_size, 1 MiB).
python3 - "$size" > "$work/envelope" <<'EOF'
import json, sys
size = int(sys.argv[1])
ev = json.dumps({"event_id": "0123456789abcdef0123456789abcdef", "platform": "other",
                 "level": "error", "message": "memory", "extra": {"blob": "x" * max(0, size - 200)}})
print('{"event_id":"0123456789abcdef0123456789abcdef"}')
print(json.dumps({"type": "event", "length": len(ev)}))
print(ev)
EOF

up_port=$(free_port)
upstream="http://127.0.0.1:$up_port"
port=$(free_port)
pprof_port=$(free_port)
mkdir -p "$work/cfg/.relay"
cat > "$work/cfg/.relay/config.yml" <<EOF
jetstream:
  max_bytes: ${half_mb}MiB
spool:
  max_disk_size: ${half_mb}MiB
http:
  outage_grace_period: $grace
EOF
(cd "$work/cfg" && RELAY_PPROF_ADDR="127.0.0.1:$pprof_port" exec "$work/relay" run --mode proxy --upstream "$upstream" --port "$port") > "$work/relay.log" 2>&1 & relay_pid=$!
pids+=("$relay_pid")
relay_url="http://127.0.0.1:$port"
wait_up "$relay_url" "$work/relay.log"

phase="$work/phase"; echo idle > "$phase"
samples="$work/samples.tsv"
(
  while kill -0 "$relay_pid" 2>/dev/null; do
    p=$(cat "$phase")
    if [ "$p" = fill ] && [ "$(spool_mb)" -gt 2 ]; then p=move; echo move > "$phase"; fi
    awk -v p="$p" '/^VmRSS:/ { rss = $2 } /^RssAnon:/ { anon = $2 } END { printf "%s\t%d\t%d\n", p, rss, anon }' "/proc/$relay_pid/status" >> "$samples" 2>/dev/null || true
    sleep 0.5
  done
) & sampler=$!

sleep 5
echo fill > "$phase"
echo "== fill: ${size}-byte envelopes until ~${total_mb} MB are stored (upstream down, grace $grace)" >&2
grace_s=${grace%s}
start=$(date +%s); last=-1; grown=$start
while :; do
  t=$(date +%s)
  "$work/relay-load" -bare=false -c "$conns" -d 5s -warmup 0s -body "$work/envelope" -url "$relay_url" -row fill > /dev/null 2>&1 || true
  [ "$(date +%s)" -gt "$t" ] || sleep 1 # refused at once (the stream full): do not spin
  d=$(disk_mb); now=$(date +%s)
  echo "   stored ${d} MB (spool $(spool_mb) MB) after $((now - start)) s, phase $(cat "$phase")" >&2
  [ "$d" -ge $((total_mb * 95 / 100)) ] && break
  [ "$d" -gt "$last" ] && grown=$now
  last=$d
  # Stop when nothing more was stored for 30 s after the grace: both full.
  if [ $((now - start)) -gt $((grace_s + 30)) ] && [ $((now - grown)) -ge 30 ]; then
    echo "   nothing more is stored: stopping the fill at ${d} MB" >&2; break
  fi
  if [ -n "${PROFILE:-}" ] && [ "$(cat "$phase")" = move ] && [ ! -s "$PROFILE-move.pprof" ]; then
    curl -sf -o "$PROFILE-move.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/heap" || true
  fi
done
stored_mb=$(disk_mb)
echo drain > "$phase"
echo "== drain: the upstream back on $upstream" >&2
t0=$(date +%s.%N)
"$work/relay-load" -serve-bare -addr "127.0.0.1:$up_port" > "$work/upstream.addr" & up_pid=$!
pids+=("$up_pid")
prev=-1; still=0; profiled=
while :; do
  sleep 1
  c=$(count)
  if [ -n "${PROFILE:-}" ] && [ -z "$profiled" ] && [ "$c" -gt 0 ]; then
    curl -sf -o "$PROFILE-drain.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/heap" || true; profiled=1
  fi
  if [ "$c" = "$prev" ]; then still=$((still + 1)); else still=0; last_change=$(date +%s.%N); fi
  prev=$c
  [ "$still" -ge 5 ] && [ "$c" -gt 0 ] && break
done
drain_s=$(echo "$last_change - $t0" | bc)
echo after > "$phase"
sleep 5
after_mb=$(disk_mb)
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=
[ -z "${SAMPLES:-}" ] || cp "$samples" "$SAMPLES"

awk -F'\t' -v size="$size" -v stored="$stored_mb" -v after="$after_mb" -v n="$prev" -v secs="$drain_s" -v total="$total_mb" '
  { if (!($1 in peak)) order[++k] = $1
    if ($2 > peak[$1]) peak[$1] = $2
    if ($3 > anon[$1]) anon[$1] = $3 }
  END {
    printf "%d-byte envelopes, ~%d MB target: stored %d MB; upstream received %d envelopes in %.1f s (%.0f/s); disk %d MB -> %d MB\n\n", size, total, stored, n, secs, n / secs, stored, after
    printf "| phase | peak VmRSS | peak RssAnon |\n|---|---|---|\n"
    for (i = 1; i <= k; i++) printf "| %s | %.0f MB | %.0f MB |\n", order[i], peak[order[i]] / 1024, anon[order[i]] / 1024
  }' "$samples"
grep -E 'level=(WARN|ERROR)' "$work/relay.log" | cut -c1-200 | sort | uniq -c | sort -rn | head -5 >&2 || true

#!/usr/bin/env bash
# The drain rate of the real binary, measured out of process (issue 15): the
# upstream is down while relay-load sends the default ~1.4 KB event until N
# envelopes (default 100 000) are in the spool — the worker moves the stream
# there after the outage grace — then the upstream comes back (relay-load
# -serve-bare, another process, on the port the relay was given) and its
# envelope counter (/_count) is sampled every 0.2 s until it stops growing.
#
#   cmd/relay-load/drain.sh                    # 100 000 envelopes
#   N=20000 cmd/relay-load/drain.sh            # a quick run
#   PROFILE=/tmp/drain cmd/relay-load/drain.sh # also a CPU profile (-tags pprof) of 8 s
#                                              # of the drain: /tmp/drain.pprof, .top
#   CONFIG=$'worker:\n  concurrency: 128\n' cmd/relay-load/drain.sh   # more config.yml lines
#       (in sections other than spool and http, which this script writes: a
#       section twice is a YAML error, and the run ends with the relay's log)
#
# Reports the envelopes in the spool, how long the relay took to notice the
# upstream (outage probe backoff), the drain time from the first envelope
# received to the last, the rate over it and over its middle 80 %, and the
# relay's CPU time per drained envelope. Everything listens on 127.0.0.1;
# every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${N:-100000}
conns=${CONNS:-16}
. cmd/relay-load/lib.sh drain

metric() { curl -sf "$relay_url/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$relay_pid/stat"; }

up_port=$(free_port)
upstream="http://127.0.0.1:$up_port"
port=$(free_port)
pprof_port=$(free_port)
mkdir -p "$work/cfg/.relay"
cat > "$work/cfg/.relay/config.yml" <<CFG
spool:
  max_disk_size: 4GiB
http:
  outage_grace_period: 2s
CFG
printf '%s' "${CONFIG:-}" >> "$work/cfg/.relay/config.yml"
(cd "$work/cfg" && RELAY_PPROF_ADDR="127.0.0.1:$pprof_port" exec "$work/relay" run --mode proxy --upstream "$upstream" --port "$port") > "$work/relay.log" 2>&1 & relay_pid=$!
pids+=("$relay_pid")
relay_url="http://127.0.0.1:$port"
wait_up "$relay_url" "$work/relay.log"

echo "== fill: the default event until $n envelopes are stored (upstream down)" >&2
while :; do
  held=$(( $(metric relay_spool_records) + $(metric relay_stream_messages) ))
  [ "$held" -ge "$n" ] && break
  "$work/relay-load" -bare=false -c "$conns" -d 2s -warmup 0s -url "$relay_url" -row fill > /dev/null 2>&1 || true
  echo "   stored $held (spool $(metric relay_spool_records))" >&2
done
# Let the worker move the rest of the stream into the spool.
for _ in $(seq 600); do
  [ "$(metric relay_stream_messages)" -eq 0 ] && break
  sleep 0.5
done
spooled=$(metric relay_spool_records)
echo "   in the spool: $spooled (stream $(metric relay_stream_messages))" >&2

echo "== drain: the upstream back on $upstream" >&2
samples="$work/samples.tsv"; : > "$samples"
t0=$(date +%s.%N); c0=$(cpu_ticks)
"$work/relay-load" -serve-bare -addr "127.0.0.1:$up_port" > "$work/upstream.addr" & up_pid=$!
pids+=("$up_pid")
prev=-1; last_change=$(date +%s.%N); prof_pid=
while :; do
  sleep 0.2
  c=$(count); now=$(date +%s.%N)
  printf '%s\t%s\n' "$now" "$c" >> "$samples"
  if [ -n "${PROFILE:-}" ] && [ -z "$prof_pid" ] && [ "$c" -gt 0 ]; then
    curl -sf -o "$PROFILE.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=8" & prof_pid=$!
  fi
  if [ "$c" != "$prev" ]; then last_change=$now; prev=$c; c1=$(cpu_ticks); fi
  # Done: everything arrived and 2 s passed, or nothing for 10 s.
  quiet=$(echo "$now - $last_change" | bc)
  if [ "$c" -ge "$spooled" ] && [ "$(echo "$quiet >= 2" | bc)" = 1 ]; then break; fi
  if [ "$c" -gt 0 ] && [ "$(echo "$quiet >= 10" | bc)" = 1 ]; then break; fi
done
[ -z "$prof_pid" ] || { wait "$prof_pid" && go tool pprof -top -nodecount=40 "$work/relay" "$PROFILE.pprof" > "$PROFILE.top" 2>/dev/null \
  && echo "CPU profile: $PROFILE.pprof, top: $PROFILE.top" >&2; }
left=$(metric relay_spool_records)
hz=$(getconf CLK_TCK)

awk -F'\t' -v t0="$t0" -v n="$spooled" -v left="$left" -v cpu=$(( c1 - c0 )) -v hz="$hz" '
  { t[NR] = $1; c[NR] = $2 }
  END {
    for (i = 1; i <= NR; i++) if (c[i] > 0) { first = i; break }
    last = first; for (i = first; i <= NR; i++) if (c[i] > c[last]) last = i
    got = c[last]
    # The middle 80 %: from the first sample past 10 % to the first past 90 %.
    for (i = first; i <= last; i++) if (c[i] >= got * 0.1) { a = i; break }
    for (i = a; i <= last; i++) if (c[i] >= got * 0.9) { b = i; break }
    secs = t[last] - t[first]
    printf "spool: %d envelopes; upstream received %d; %d left in the spool\n", n, got, left
    printf "first envelope %.1f s after the upstream came back (outage probe)\n", t[first] - t0
    printf "drain: %.1f s from the first envelope received to the last: %.0f envelopes/s\n", secs, (secs > 0 ? (got - c[first]) / secs : 0)
    if (b > a) printf "middle 80 %%: %.0f envelopes/s\n", (c[b] - c[a]) / (t[b] - t[a])
    if (got > 0) printf "relay CPU: %.0f µs per drained envelope (user+sys, from the upstream start)\n", cpu / hz * 1e6 / got
  }' "$samples"
grep -E 'level=(WARN|ERROR)' "$work/relay.log" | cut -c1-200 | sort | uniq -c | sort -rn | head -5 >&2 || true

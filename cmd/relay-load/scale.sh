#!/usr/bin/env bash
# How delivery scales with workers: delivered envelopes per second into an
# upstream that answers every envelope after DELAY (200 ms by default), for
# 1, 2 and 4 worker processes (worker.concurrency 64 each) and for
# worker.concurrency 8, 32 and 128 in one process.
#
# Each configuration gets a fresh set of processes, all on 127.0.0.1 and all
# stopped by PID: cmd/fakesentry as the slow upstream (it counts what it
# accepts), one ingest process (`relay run --role ingest`) whose embedded
# JetStream listens for the others (jetstream.listen), and the worker
# processes (`relay run --role worker`, jetstream.url pointing at it). The
# stream is filled first (relay-load in rounds of PRELOAD, until it holds
# more than the workers can take by the end of the window), then the
# workers start;
# delivered/s is measured at the upstream over MEASURE seconds after WARMUP
# seconds of delivery, from the upstream's own timestamped counts. The CPU
# columns are utime+stime over the same window per second of wall time
# (1.00 = one core busy) of the workers together, of the ingest process
# (which runs the NATS server the workers fetch from) and of the upstream.
#
#   cmd/relay-load/scale.sh                 # the whole table
#   DELAY=50ms MEASURE=5 cmd/relay-load/scale.sh procs-2 conc-128
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/relay-scale-XXXXXX)
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

delay=${DELAY:-200ms}
preload=${PRELOAD:-10s}
warmup=${WARMUP:-3}
measure=${MEASURE:-10}
go build -o "$work/relay" ./cmd/relay
go build -o "$work/relay-load" ./cmd/relay-load
go build -o "$work/fakesentry" ./cmd/fakesentry

# name → "worker processes, concurrency per process"
declare -A configs=(
  [procs-1]="1 64" [procs-2]="2 64" [procs-4]="4 64"
  [conc-8]="1 8" [conc-32]="1 32" [conc-128]="1 128"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(procs-1 procs-2 procs-4 conc-8 conc-32 conc-128)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# cpu_ticks PID... : utime+stime of the processes, in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
# last_count FILE : "total unix_ms" of the upstream's newest report line.
last_count() { grep '^received ' "$1" | tail -1 | sed -E 's/received total=([0-9]+) unix_ms=([0-9]+)/\1 \2/'; }
hz=$(getconf CLK_TCK)

echo "upstream delay $delay, preload $preload, warm-up ${warmup}s, measured ${measure}s; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %9s %12s %12s %10s %10s %10s %10s\n' config processes concurrency delivered/s ceiling workerCPU ingestCPU upstrCPU
for name in "${names[@]}"; do
  [ -n "${configs[$name]+x}" ] || { echo "unknown configuration $name" >&2; exit 2; }
  read -r nproc conc <<< "${configs[$name]}"
  dir="$work/$name"; mkdir -p "$dir"

  "$work/fakesentry" -listen 127.0.0.1:0 -delay "$delay" -report 100ms -keep 1 > "$dir/upstream.out" 2> "$dir/upstream.log" & pids+=($!); up_pid=$!
  for _ in $(seq 50); do [ -s "$dir/upstream.out" ] && break; sleep 0.1; done
  upstream="http://$(head -1 "$dir/upstream.out")/"

  http_port=$(free_port); nats_port=$(free_port)
  mkdir -p "$dir/ingest"
  printf 'relay:\n  mode: proxy\n  port: %s\njetstream:\n  listen: 127.0.0.1:%s\n' "$http_port" "$nats_port" > "$dir/ingest/config.yml"
  "$work/relay" --config "$dir/ingest" run --role ingest --upstream "$upstream" > "$dir/ingest.log" 2>&1 & pids+=($!); ingest_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/api/relay/healthcheck/ready/" > /dev/null && break; sleep 0.1; done
  # What the workers can take at most in the window and around it, with a
  # margin; relay-load runs in rounds of PRELOAD until at least that much is
  # stored (its req/s × duration is a lower bound: warm-up requests are
  # stored too).
  need=$(awk -v n="$nproc" -v c="$conc" -v d="$delay" -v w="$warmup" -v m="$measure" \
    'BEGIN{ms=d; if (sub(/ms$/,"",ms)==0) {sub(/s$/,"",ms); ms*=1000}; printf "%.0f", n*c*1000/ms*(w+m+10)}')
  stored=0
  while [ "$stored" -lt "$need" ]; do
    "$work/relay-load" -url "http://127.0.0.1:$http_port" -c 32 -d "$preload" -bare=false > "$dir/preload.out"
    stored=$(awk -v s="$stored" -v d="${preload%s}" '$1=="relay"{printf "%.0f", s+$2*d}' "$dir/preload.out")
  done

  workers=()
  for i in $(seq "$nproc"); do
    mkdir -p "$dir/worker-$i"
    printf 'relay:\n  mode: proxy\n  port: 0\njetstream:\n  url: nats://127.0.0.1:%s\nworker:\n  concurrency: %s\n' "$nats_port" "$conc" > "$dir/worker-$i/config.yml"
    "$work/relay" --config "$dir/worker-$i" run --role worker --upstream "$upstream" > "$dir/worker-$i.log" 2>&1 & pids+=($!); workers+=($!)
  done
  for _ in $(seq 300); do
    read -r n _ <<< "$(last_count "$dir/upstream.out")"
    [ "${n:-0}" -gt 0 ] && break; sleep 0.1
  done
  sleep "$warmup"
  read -r c0 t0 <<< "$(last_count "$dir/upstream.out")"
  k0=$(cpu_ticks "${workers[@]}"); i0=$(cpu_ticks "$ingest_pid"); u0=$(cpu_ticks "$up_pid")
  sleep "$measure"
  read -r c1 t1 <<< "$(last_count "$dir/upstream.out")"
  k1=$(cpu_ticks "${workers[@]}"); i1=$(cpu_ticks "$ingest_pid"); u1=$(cpu_ticks "$up_pid")
  rate=$(awk -v a="$c0" -v b="$c1" -v ta="$t0" -v tb="$t1" 'BEGIN{printf "%.0f", (b-a)*1000/(tb-ta)}')
  # What the concurrency allows at most: every send slot busy, each send DELAY long.
  ceiling=$(awk -v n="$nproc" -v c="$conc" -v d="$delay" 'BEGIN{ms=d; if (sub(/ms$/,"",ms)==0) {sub(/s$/,"",ms); ms*=1000}; printf "%.0f", n*c*1000/ms}')
  cores() { awk -v a="$1" -v b="$2" -v hz="$hz" -v ta="$t0" -v tb="$t1" 'BEGIN{printf "%.2f", (b-a)/hz/((tb-ta)/1000)}'; }
  printf '%-9s %9s %12s %12s %10s %10s %10s %10s\n' "$name" "$nproc" "$conc" "$rate" "$ceiling" "$(cores "$k0" "$k1")" "$(cores "$i0" "$i1")" "$(cores "$u0" "$u1")"
  # The stream must still have held envelopes at the end of the window: a
  # further second must deliver at the same pace, else the figure is low
  # because the workers ran out of work, not because they were slow.
  sleep 1
  read -r c2 t2 <<< "$(last_count "$dir/upstream.out")"
  awk -v a="$c1" -v b="$c2" -v ta="$t1" -v tb="$t2" -v r="$rate" \
    'BEGIN{ if ((b-a)*1000/(tb-ta) < 0.8*r) print "  warning: the stream ran dry during the window; raise PRELOAD" }'
  stop_all
done

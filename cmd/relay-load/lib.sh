# Shared by bench.sh, drain.sh and memory.sh, sourced from the repository
# root with the run's name: `. cmd/relay-load/lib.sh NAME`. It leaves
#   $work      a fresh /tmp/relay-NAME-XXXXXX, removed at exit
#   $pids      processes to stop (by PID) at exit; $sampler too when set
#   $work/relay, $work/relay-load   built from this checkout (the relay
#              with -tags pprof when PROFILE is set)
# and defines free_port (a free TCP port on 127.0.0.1), count (the
# stand-in upstream's envelope counter at $upstream/_count, 0 when down) and
# wait_up (a relay live, or the run ends with its log).
work=$(mktemp -d "/tmp/relay-$1-XXXXXX")
pids=()
sampler=
cleanup() {
  [ -z "$sampler" ] || { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
tags=()
[ -z "${PROFILE:-}" ] || tags=(-tags pprof)
go build "${tags[@]}" -o "$work/relay" ./cmd/relay
go build -o "$work/relay-load" ./cmd/relay-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
count() { curl -sf "$upstream/_count" 2>/dev/null || echo 0; }

# wait_up URL LOG: wait (10 s at most) until the relay at URL answers its
# liveness check; otherwise print its LOG and end the run — a relay that did
# not start (a config error, say) must not leave the script measuring nothing.
wait_up() {
  for _ in $(seq 100); do curl -sf "$1/api/relay/healthcheck/live/" > /dev/null && return; sleep 0.1; done
  echo "the relay at $1 did not come up; its log ($2):" >&2
  cat "$2" >&2
  exit 1
}

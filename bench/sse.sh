#!/usr/bin/env bash
# The extra server CPU per message of a client on the fallback transport
# (Server-Sent Events down, POSTs up: core/transport/sse.c) against a
# WebSocket client, with the same app (bench/sse_app.lua) and the same
# 32 B text messages, loaded by bench/sse_load.py (Python 3, standard
# library).
#
#   bench/sse.sh [VM...]      (VMs: luajit lua5.4; default both)
#
# Scenarios, each for a WebSocket and for an SSE client (CONNS=100 of them):
#   down  the app publishes to a topic every connection subscribed to,
#         DOWN_BATCH publications (default 1) per loop iteration, while the
#         first subscriber's queue is empty; the clients only count what
#         they read (every delivery checked to have arrived). Figures per
#         delivered message.
#   up    the clients send, the app counts and answers nothing. A
#         WebSocket client writes BATCH frames at once and the next as soon
#         as the socket takes them; an SSE client sends one POST of BATCH
#         frames at a time, the next when its 204 is in (as duplex.js
#         does, batching what was queued while a POST was out). BATCHES
#         (default "1 16"). Figures per received message.
#
# The server's CPU is measured two ways:
#   instructions/message  callgrind (the method of bench/instructions.sh):
#         runs to LOW and HIGH messages, (Ir(HIGH) - Ir(LOW)) divided by the
#         messages between them, which cancels start-up and handshakes.
#         User space only (the Lua VM, libev, libc, the core; not the
#         kernel's work for the system calls). They hold on a busy machine:
#         the headline.
#   CPU ns/message  utime+stime of the server process (/proc/<pid>/stat,
#         read by the app itself) over a WINDOW-second window (default 1)
#         after a 0.3 s warm-up, median of RUNS (default 3) runs, the kernel's
#         part of the system calls included. These move with the load of the
#         machine and with the client's pace (a Python client: its rate,
#         not the server's, sets how many messages share a read or a write).
# The ratio SSE/WS compares each SSE row with the WebSocket row of the same
# direction and batch. Environment: KEEP=1 keeps the logs and profiles (the
# script says where), NO_CALLGRIND=1 / NO_CPU=1 skip a method, BUILD
# (default build) the directory holding <vm>/duplex.
set -euo pipefail
cd "$(dirname "$0")/.."

VMS=${*:-luajit lua5.4}
CONNS=${CONNS:-100}
DOWN_BATCH=${DOWN_BATCH:-1}
BATCHES=${BATCHES:-1 16}
RUNS=${RUNS:-3}
WINDOW=${WINDOW:-1}
BUILD=${BUILD:-build}
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))
APP=bench/sse_app.lua
LOAD=bench/sse_load.py

command -v python3 >/dev/null || { echo "sse.sh: python3 is needed" >&2; exit 2; }
if [[ ${NO_CALLGRIND:-0} != 1 ]] && ! command -v valgrind >/dev/null; then
  echo "sse.sh: valgrind is needed (apt-get install valgrind), or NO_CALLGRIND=1" >&2
  exit 2
fi
OUT=$(mktemp -d -t duplex-sse-bench.XXXXXX)
if [[ ${KEEP:-0} == 1 ]]; then
  echo "sse.sh: logs and profiles kept in $OUT" >&2
else
  trap 'rm -rf "$OUT"' EXIT
fi

# Callgrind counts: LOW HIGH (down: publications, each to CONNS subscribers;
# up: messages).
counts() { # direction batch
  case $1.$2 in
    down.*) echo "100 500" ;;
    up.1) echo "4000 20000" ;;
    up.*) echo "16000 80000" ;;
  esac
}

SPID="" LPID=""
cleanup_run() {
  if [[ -n $LPID ]]; then kill "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; fi
  if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  SPID="" LPID=""
}
trap 'cleanup_run; exit 130' INT TERM

# serve VM DIR TRANSPORT BATCH LOG [valgrind args...]: starts the app, sets
# SPID and PORT (empty when it did not start).
serve() {
  local vm=$1 dir=$2 batch=$3 log=$4; shift 4
  PORT=""
  DUPLEX_MODE=$dir DUPLEX_CONNS=$CONNS DUPLEX_BATCH=$batch \
    timeout 600 "$@" "$BUILD/$vm/duplex" run "$APP" --host 127.0.0.1 --port 0 \
    >"$log.out" 2>"$log.err" &
  SPID=$!
  for _ in $(seq 300); do
    PORT=$(sed -n 's|.*listening on ws://127.0.0.1:\([0-9]*\).*|\1|p' "$log.out" | head -1)
    [[ -n $PORT ]] && return 0
    kill -0 "$SPID" 2>/dev/null || return 0
    sleep 0.1
  done
}

# load DIR TRANSPORT BATCH LOG [MESSAGES]: runs the client until the server
# goes; its line ("received R sent S posts P errors E") in LOG.load.
load() {
  local dir=$1 tr=$2 batch=$3 log=$4 n=${5:-0}
  timeout 600 python3 "$LOAD" "$PORT" "$dir" "$tr" --conns "$CONNS" --batch "$batch" \
    --messages "$n" >"$log.load" 2>>"$log.err" &
  LPID=$!
  wait "$LPID" || true
  LPID=""
  wait "$SPID" || true
  SPID=""
}

# check DIR LOG: the load saw no error, and down, every delivery arrived
check() {
  local dir=$1 log=$2 got want errs
  read -r _ got _ _ _ _ _ errs < "$log.load" || return 1
  [[ ${errs:-1} == 0 ]] || return 1
  if [[ $dir == down ]]; then
    want=$(sed -n 's/^messages //p' "$log.err")
    [[ -n $want && $got == "$want" ]] || return 1
  fi
}

# callgrind VM DIR TRANSPORT BATCH COUNT -> "Ir messages" (0 0 on failure)
callgrind_run() {
  local vm=$1 dir=$2 tr=$3 batch=$4 n=$5
  local log=$OUT/cg.$vm.$dir.$tr.$batch.$n prof
  prof=$log.callgrind
  local db=$DOWN_BATCH
  [[ $dir == up ]] && db=1
  DUPLEX_COUNT=$n serve "$vm" "$dir" "$db" "$log" valgrind --tool=callgrind --callgrind-out-file="$prof"
  if [[ -z $PORT ]]; then cleanup_run; echo "0 0"; return; fi
  local sends=0
  [[ $dir == up ]] && sends=$n
  load "$dir" "$tr" "$batch" "$log" "$sends"
  if ! check "$dir" "$log"; then echo "0 0"; return; fi
  echo "$(sed -n 's/^summary: //p' "$prof" 2>/dev/null || echo 0) $(sed -n 's/^messages //p' "$log.err")"
}

# cpu_run VM DIR TRANSPORT BATCH RUN -> ns of CPU per message ("" on failure)
cpu_run() {
  local vm=$1 dir=$2 tr=$3 batch=$4 r=$5
  local log=$OUT/cpu.$vm.$dir.$tr.$batch.$r
  local db=$DOWN_BATCH
  [[ $dir == up ]] && db=1
  DUPLEX_WINDOW=$WINDOW DUPLEX_WARMUP=0.3 serve "$vm" "$dir" "$db" "$log"
  if [[ -z $PORT ]]; then cleanup_run; return; fi
  load "$dir" "$tr" "$batch" "$log"
  check "$dir" "$log" || return 0
  local m t
  read -r m t < <(sed -n 's/^window //p' "$log.err")
  [[ -n ${m:-} && $m -gt 0 ]] || return 0
  awk -v t="$t" -v m="$m" -v k="$TICK_NS" 'BEGIN { printf "%.0f\n", t * k / m }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
  END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2];
        else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b == 0) print "-";
  else printf "%.2f\n", a / b }'; }

SCEN=("down ws $DOWN_BATCH" "down sse $DOWN_BATCH")
for b in $BATCHES; do SCEN+=("up ws $b" "up sse $b"); done

failed=0
for vm in $VMS; do
  [[ -x $BUILD/$vm/duplex ]] || { echo "sse.sh: $BUILD/$vm/duplex missing (make build)" >&2; exit 2; }
  declare -A IR=() NS=()
  for sc in "${SCEN[@]}"; do
    read -r dir tr batch <<<"$sc"
    IR[$sc]="-" NS[$sc]="-"
    if [[ ${NO_CALLGRIND:-0} != 1 ]]; then
      read -r lo hi < <(counts "$dir" "$batch")
      read -r ir1 m1 < <(callgrind_run "$vm" "$dir" "$tr" "$batch" "$lo")
      read -r ir2 m2 < <(callgrind_run "$vm" "$dir" "$tr" "$batch" "$hi")
      if (( m1 > 0 && m2 > m1 )); then
        IR[$sc]=$(awk -v a="$ir1" -v b="$ir2" -v d="$((m2 - m1))" 'BEGIN { printf "%.0f\n", (b - a) / d }')
      else
        echo "sse.sh: $vm $sc: callgrind run failed (KEEP=1 keeps its logs)" >&2
        failed=1
      fi
    fi
    v=()
    if [[ ${NO_CPU:-0} != 1 ]]; then
      for r in $(seq "$RUNS"); do
        x=$(cpu_run "$vm" "$dir" "$tr" "$batch" "$r")
        [[ -n $x ]] && v+=("$x")
      done
      if (( ${#v[@]} )); then
        NS[$sc]=$(median "${v[@]}")
        (( ${#v[@]} == RUNS )) || echo "sse.sh: $vm $sc: $((RUNS - ${#v[@]})) of $RUNS CPU runs failed" >&2
      else
        echo "sse.sh: $vm $sc: every CPU run failed (KEEP=1 keeps its logs)" >&2
        failed=1
      fi
    fi
    echo "sse.sh: $vm $sc: ${IR[$sc]} instructions, ${NS[$sc]} ns CPU per message (runs: ${v[*]:-none})" >&2
  done
  echo
  echo "$vm, $CONNS connections, 32 B text; down: $DOWN_BATCH publication(s) at a time; CPU: median of $RUNS x ${WINDOW} s"
  printf '%-9s %-9s %5s  %18s  %15s  %13s  %13s\n' direction transport batch "instructions/msg" "CPU ns/msg" "SSE/WS instr" "SSE/WS CPU"
  for sc in "${SCEN[@]}"; do
    read -r dir tr batch <<<"$sc"
    ri="" rc=""
    if [[ $tr == sse ]]; then
      ri=$(ratio "${IR[$sc]}" "${IR[$dir ws $batch]}")
      rc=$(ratio "${NS[$sc]}" "${NS[$dir ws $batch]}")
    fi
    printf '%-9s %-9s %5s  %18s  %15s  %13s  %13s\n' "$dir" "$tr" "$batch" "${IR[$sc]}" "${NS[$sc]}" "$ri" "$rc"
  done
  unset IR NS
done
exit "$failed"

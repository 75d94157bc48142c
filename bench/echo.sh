#!/usr/bin/env bash
# Echo throughput: duplex (Lua 5.4, LuaJIT) beside Node's `ws`, same run.
#
#   bench/echo.sh [SECONDS]        (measured window per run, default 5)
#
# Environment: WARMUP (s, default 2), RUNS (default 3), CONNS (100),
# DEPTH (16 in flight per connection), SIZE (32-byte text messages),
# CLIENT_ARGS (extra lws-echo-load flags, e.g. "-1" for one lws_write per
# message), SERVER_CPU (1) and CLIENT_CPU (0) for taskset.
#
# Load client: bench/lws-echo-load.c on libwebsockets (independent of
# duplex), closed loop, every echo checked for length and content.
# Each server runs as one process pinned to SERVER_CPU, the client to
# CLIENT_CPU; runs are interleaved (run 1 of each server, then run 2, ...).
# CPU% columns are measured over the measured window only: the server's and
# the client's from /proc/PID/stat (utime+stime), the cores' from /proc/stat
# (everything but idle and iowait, softirq included). 100% = one full core.
# Loopback only; every process started here is bounded in time and killed
# on exit.
set -euo pipefail

SECS=${1:-5}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-3}
CONNS=${CONNS:-100}
DEPTH=${DEPTH:-16}
SIZE=${SIZE:-32}
CLIENT_ARGS=${CLIENT_ARGS:-}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
HOST=127.0.0.1

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)

die() { echo "echo.sh: $*" >&2; exit 1; }

# ---- build what is needed ------------------------------------------------
if [[ ! -x build/lua5.4/duplex || ! -x build/luajit/duplex ]]; then
  echo "echo.sh: building duplex (make build)" >&2
  timeout 900 make build >&2 || die "make build failed"
fi

if ! pkg-config --exists libwebsockets 2>/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    echo "echo.sh: installing libwebsockets-dev" >&2
    timeout 600 apt-get install -y -qq libwebsockets-dev pkg-config >&2 ||
      { timeout 600 apt-get update -qq >&2 &&
        timeout 600 apt-get install -y -qq libwebsockets-dev pkg-config >&2; } ||
      die "cannot install libwebsockets-dev"
  else
    die "libwebsockets-dev is missing (apt-get install libwebsockets-dev)"
  fi
fi
CLIENT=$OUT/lws-echo-load
if [[ ! -x $CLIENT || bench/lws-echo-load.c -nt $CLIENT ]]; then
  cc -O2 -Wall -Wextra -o "$CLIENT" bench/lws-echo-load.c \
    $(pkg-config --cflags --libs libwebsockets) || die "client build failed"
fi

if ! node -e "require.resolve('ws')" >/dev/null 2>&1; then
  WSDIR=$OUT/ws-deps
  if [[ ! -d $WSDIR/node_modules/ws ]]; then
    echo "echo.sh: installing ws into $WSDIR (package.json untouched)" >&2
    mkdir -p "$WSDIR"
    (cd "$WSDIR" && timeout 300 npm install --no-save --silent ws >&2) ||
      die "npm install ws failed"
  fi
  export NODE_PATH=$WSDIR/node_modules${NODE_PATH:+:$NODE_PATH}
fi

# ---- servers -------------------------------------------------------------
NAMES=(duplex-lua5.4 duplex-luajit node-ws)
declare -A CMD PID PORT
CMD[duplex-lua5.4]="build/lua5.4/duplex run scripts/echo.lua --host $HOST --port 0"
CMD[duplex-luajit]="build/luajit/duplex run scripts/echo.lua --host $HOST --port 0"
CMD[node-ws]="node bench/ws-echo-server.js --host $HOST --port 0"

declare -A SPID
cleanup() {
  for n in "${NAMES[@]}"; do
    local p=${PID[$n]:-} s=${SPID[$n]:-}
    [[ -n $p ]] && kill "$p" 2>/dev/null || true   # timeout passes it on
    [[ -n $s ]] && kill "$s" 2>/dev/null || true   # and the server itself
  done
  for n in "${NAMES[@]}"; do
    local p=${PID[$n]:-}
    [[ -n $p ]] && wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Server lifetime bound: everything it could need plus a margin.
LIFETIME=$(( (WARMUP + SECS + 20) * RUNS + 60 ))
for n in "${NAMES[@]}"; do
  log=$OUT/$n.stdout
  : > "$log"
  # shellcheck disable=SC2086
  timeout -s TERM "$LIFETIME" taskset -c "$SERVER_CPU" ${CMD[$n]} \
    > "$log" 2> "$OUT/$n.stderr" &
  PID[$n]=$!
  for _ in $(seq 100); do
    grep -q "ws://$HOST:" "$log" 2>/dev/null && break
    kill -0 "${PID[$n]}" 2>/dev/null || break
    sleep 0.1
  done
  PORT[$n]=$(head -1 "$log" | sed -n "s|.*ws://$HOST:\([0-9][0-9]*\).*|\1|p")
  [[ -n ${PORT[$n]} ]] || die "$n did not print its port (see $OUT/$n.stderr)"
done
# `timeout` is the direct child; sample the server itself (its only child).
for n in "${NAMES[@]}"; do
  SPID[$n]=$(pgrep -P "${PID[$n]}" | head -1)
  [[ -n ${SPID[$n]} ]] || die "cannot find $n's pid"
done

proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
core_stat() { # jiffies of core $1: "busy tasks total" (busy: all but idle and
  # iowait, so softirq and steal too; tasks: user+nice+system, i.e. time some
  # process was charged for)
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i;
    print t - $5 - $6, $2 + $3 + $4, t }' /proc/stat
}
now() { date +%s.%N; }

# ---- runs ----------------------------------------------------------------
declare -A RATE SCPU CCPU ERRS CORE0 CORE1 OTH0 OTH1
CLIENT_TIMEOUT=$(( WARMUP + SECS + 20 ))
echo "echo.sh: $CONNS conns x $DEPTH in flight, $SIZE-byte text, warm-up ${WARMUP}s, window ${SECS}s, $RUNS runs; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU" >&2
for r in $(seq "$RUNS"); do
  for n in "${NAMES[@]}"; do
    kill -0 "${SPID[$n]}" 2>/dev/null || die "$n died (see $OUT/$n.stderr)"
    result=""
    s0=0 t0=0 b0=(0 0 0) c0=(0 0 0)
    # shellcheck disable=SC2086
    while IFS= read -r line; do
      case $line in
        WINDOW_START*)
          s0=$(proc_cpu "${SPID[$n]}"); t0=$(now)
          read -r -a c0 <<< "$(core_stat "$CLIENT_CPU")"
          read -r -a b0 <<< "$(core_stat "$SERVER_CPU")"
          ;;
        RESULT*)
          s1=$(proc_cpu "${SPID[$n]}"); t1=$(now)
          read -r -a c1 <<< "$(core_stat "$CLIENT_CPU")"
          read -r -a b1 <<< "$(core_stat "$SERVER_CPU")"
          result=$line
          ;;
      esac
    done < <(timeout -s KILL "$CLIENT_TIMEOUT" taskset -c "$CLIENT_CPU" \
               "$CLIENT" -h "$HOST" -p "${PORT[$n]}" -c "$CONNS" -d "$DEPTH" \
               -s "$SIZE" -w "$WARMUP" -t "$SECS" $CLIENT_ARGS \
               2>> "$OUT/client-$n.stderr")
    [[ -n $result ]] || die "client run $r against $n gave no result (see $OUT/client-$n.stderr)"
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $result"; }
    RATE[$n,$r]=$(get msg_per_s)
    ERRS[$n,$r]=$(get errors)
    CCPU[$n,$r]=$(get client_cpu)
    SCPU[$n,$r]=$(awk -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" \
      -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')
    # core busy %, and "other": task time on that core not charged to the
    # pinned process (other processes sharing the machine; for the client
    # core, also the server's node threads if any strayed -- they cannot, all
    # are pinned). High "other" means the run was disturbed.
    pct() { awk -v d="$1" -v T="$2" 'BEGIN { printf "%.0f", (T > 0) ? 100 * d / T : 0 }'; }
    CORE0[$n,$r]=$(pct $(( c1[0] - c0[0] )) $(( c1[2] - c0[2] )))
    CORE1[$n,$r]=$(pct $(( b1[0] - b0[0] )) $(( b1[2] - b0[2] )))
    ccpu_j=$(awk -v p="${CCPU[$n,$r]}" -v T=$(( c1[2] - c0[2] )) 'BEGIN { printf "%.0f", p * T / 100 }')
    OTH0[$n,$r]=$(pct $(( c1[1] - c0[1] - ccpu_j )) $(( c1[2] - c0[2] )))
    OTH1[$n,$r]=$(pct $(( b1[1] - b0[1] - s1 + s0 )) $(( b1[2] - b0[2] )))
    (( OTH0[$n,$r] < 0 )) && OTH0[$n,$r]=0
    (( OTH1[$n,$r] < 0 )) && OTH1[$n,$r]=0
    printf 'run %d %-14s %7s msg/s  errors %s  server cpu %s%%  client cpu %s%%  core%s busy %s%% (other %s%%)  core%s busy %s%% (other %s%%)\n' \
      "$r" "$n" "${RATE[$n,$r]}" "${ERRS[$n,$r]}" "${SCPU[$n,$r]}" "${CCPU[$n,$r]}" \
      "$SERVER_CPU" "${CORE1[$n,$r]}" "${OTH1[$n,$r]}" "$CLIENT_CPU" "${CORE0[$n,$r]}" "${OTH0[$n,$r]}" >&2
  done
done

# ---- table ---------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
  END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A MED
for n in "${NAMES[@]}"; do
  vals=(); for r in $(seq "$RUNS"); do vals+=("${RATE[$n,$r]}"); done
  MED[$n]=$(median "${vals[@]}")
done
echo
echo "echo throughput: $CONNS conns x $DEPTH in flight, $SIZE B text, ${SECS}s window after ${WARMUP}s warm-up; client lws-echo-load${CLIENT_ARGS:+ $CLIENT_ARGS}"
printf '%-14s | %-26s | %7s | %6s | %6s | %7s | %7s | %-11s | %-11s\n' \
  server "runs msg/s" median "vs ws" errors "srv cpu" "cli cpu" "core$SERVER_CPU busy/oth" "core$CLIENT_CPU busy/oth"
printf -- '---------------+----------------------------+---------+--------+--------+---------+---------+-------------+------------\n'
for n in "${NAMES[@]}"; do
  runs="" errs=0 sc=() cc=() k1=() k0=() o1=() o0=()
  for r in $(seq "$RUNS"); do
    mark=""
    (( OTH0[$n,$r] > 10 || OTH1[$n,$r] > 10 )) && mark="*"
    runs+="${RATE[$n,$r]}$mark "
    errs=$(( errs + ${ERRS[$n,$r]} ))
    sc+=("${SCPU[$n,$r]}"); cc+=("${CCPU[$n,$r]}")
    k1+=("${CORE1[$n,$r]}"); k0+=("${CORE0[$n,$r]}")
    o1+=("${OTH1[$n,$r]}"); o0+=("${OTH0[$n,$r]}")
  done
  ratio=$(awk -v a="${MED[$n]}" -v b="${MED[node-ws]}" 'BEGIN { printf "%.2fx", (b > 0) ? a / b : 0 }')
  printf '%-14s | %-26s | %7.0f | %6s | %6d | %6.0f%% | %6.0f%% | %4.0f%%/%3.0f%%  | %4.0f%%/%3.0f%%\n' \
    "$n" "$runs" "${MED[$n]}" "$ratio" "$errs" "$(median "${sc[@]}")" \
    "$(median "${cc[@]}")" "$(median "${k1[@]}")" "$(median "${o1[@]}")" \
    "$(median "${k0[@]}")" "$(median "${o0[@]}")"
done
echo "(errors: summed over runs, whole client run. cpu: median over runs, % of one core over the measured window."
echo " core busy: all but idle/iowait, softirq included; oth: task time on that core charged to neither server nor client,"
echo " i.e. other work sharing the machine; a run marked * had more than 10% of it on a core: disturbed)"

#!/usr/bin/env bash
# Broadcast and connect scenarios: duplex (LuaJIT, Lua 5.4) beside its
# peers, with duplex's own C load generator (`duplex bench`) as the client.
#
#   bench/scenarios.sh [SECONDS]     (broadcast window per run, default 5)
#
# Scenarios (SCENARIOS, default "broadcast connect"):
#   broadcast  BCAST_SUBS (1000) subscribers + 1 publisher, BCAST_SIZE (32) B
#              text, closed loop with BCAST_DEPTHS ("1 8") messages in flight
#              in total; one table per depth. Servers (BCAST_SERVERS):
#                duplex-luajit, duplex-lua5.4  build/<vm>/duplex run
#                              lua/duplex/bench_app.lua  (the app `duplex
#                              bench` starts itself; URL path /broadcast,
#                              ws:publish: framed once for all subscribers)
#                node-ws       bench/ws-broadcast-server.js (ws: client.send
#                              for each client but the sender)
#                uws-cpp (ask) bench/uws-echo-server.cpp's /broadcast (uWS
#                              pub/sub: ws->publish, framed once; uWS sends
#                              what is published at the end of the event
#                              loop's iteration); needs UWS_DIR, see below
#              Figures: deliveries/s (messages received by subscribers),
#              p50/p99 latency (publish -> delivery), lost, errors, server
#              CPU% (process tree, sampled inside the measured window) and
#              the client's.
#   connect    CONNECT_N (10000) connections, CONNECT_CONC (256) handshakes
#              in progress at once, against a FRESH server per run.
#              Servers (CONNECT_SERVERS): duplex-luajit, duplex-lua5.4
#              (scripts/echo.lua), node-ws (bench/ws-echo-server.js),
#              nginx-lua (bench/nginx, one worker), lws-c
#              (bench/lws-echo-server.c), uws-cpp when asked
#              (bench/uws-echo-server.cpp): the echo servers of bench/echo.sh,
#              started the same way (bench/lib.sh).
#              Figures: handshakes/s (opened / time to open all), server RSS
#              per connection (VmRSS of the server process when all are open
#              minus before, / N, read by `duplex bench --server-pid`; for
#              nginx the pid given is its one WORKER's: the master does not
#              hold connections), server CPU per 1000 connections (opening
#              and closing them).
#
# Environment: RUNS (3), WARMUP (2 s), QUICK=1 (1 run, 1 s warm-up, 2 s
# window; explicit RUNS/WARMUP/SECONDS still win), SERVER_CPU (1),
# CLIENT_CPU (0), and the variables above. uws-cpp, in neither default
# list, is built from the uWebSockets source tree UWS_DIR names (its
# uSockets inside it, or in UWS_SOCKETS_DIR: bench/lib.sh prepare_uws). Runs are interleaved (run 1 of
# each server, then run 2, ...). Before timing broadcast, each server passes
# a 1 s smoke run (no error, nothing lost) or is marked broken. Every
# process started here is bounded in time (timeout) and killed on exit;
# loopback only. Defaults take about 4-5 minutes.
#
# Output: progress on stderr; the tables (server | runs | median | ratio vs
# duplex-luajit | extra columns) on stdout at the end, and one JSON line per
# table appended to bench/out/scenarios-results.jsonl.
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  SECS=${1:-2}; WARMUP=${WARMUP:-1}; RUNS=${RUNS:-1}
else
  SECS=${1:-5}; WARMUP=${WARMUP:-2}; RUNS=${RUNS:-3}
fi
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SCENARIOS=${SCENARIOS:-broadcast connect}
BCAST_SUBS=${BCAST_SUBS:-1000}
BCAST_SIZE=${BCAST_SIZE:-32}
BCAST_DEPTHS=${BCAST_DEPTHS:-1 8}
BCAST_SERVERS=${BCAST_SERVERS:-duplex-luajit duplex-lua5.4 node-ws}
CONNECT_N=${CONNECT_N:-10000}
CONNECT_CONC=${CONNECT_CONC:-256}
CONNECT_SERVERS=${CONNECT_SERVERS:-duplex-luajit duplex-lua5.4 node-ws nginx-lua lws-c}
HOST=127.0.0.1
REF=duplex-luajit
BENCH_TIMEOUT=10   # duplex bench --timeout: bound on connecting and on draining

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)
PROG=scenarios.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

[[ $SECS =~ ^[0-9]+$ && $SECS -ge 2 ]] || die "SECONDS must be a whole number >= 2"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number"
for s in $SCENARIOS; do
  case $s in broadcast|connect) ;; *) die "unknown scenario '$s' (broadcast, connect)" ;; esac
done
read -r -a BNAMES <<< "$BCAST_SERVERS"
read -r -a CNAMES <<< "$CONNECT_SERVERS"
for n in "${BNAMES[@]}"; do
  case $n in duplex-luajit|duplex-lua5.4|node-ws|uws-cpp) ;;
    *) die "unknown broadcast server '$n' (duplex-luajit duplex-lua5.4 node-ws uws-cpp)" ;; esac
done
for n in "${CNAMES[@]}"; do
  case $n in duplex-luajit|duplex-lua5.4|node-ws|nginx-lua|lws-c|uws-cpp) ;;
    *) die "unknown connect server '$n'" ;; esac
done

ALL=()
[[ " $SCENARIOS " == *" broadcast "* ]] && ALL+=("${BNAMES[@]}")
[[ " $SCENARIOS " == *" connect "* ]] && ALL+=("${CNAMES[@]}")
prepare_servers "${ALL[@]}"
[[ -x build/luajit/duplex ]] || die "build/luajit/duplex is missing (make build)"
DUPLEX=$ROOT/build/luajit/duplex   # the load generator

trap stop_servers EXIT
trap 'exit 130' INT TERM

# One `duplex bench` run against server $n, pinned to CLIENT_CPU, bounded.
# With sample_from > 0, the server's and the client's CPU are sampled from
# sample_from s after the start for sample_len s (inside the measured window
# when connecting takes under a second); otherwise over the whole run.
# Sets R_LINE (its JSON line, empty if none), R_SCPU, R_CCPU (% of one core),
# R_SJIF (server jiffies over the sample), R_SSYS (% of those in the kernel).
bench_run() { # name sample_from sample_len bench-args...
  local n=$1 from=$2 len=$3; shift 3
  local errlog=$OUT/scn-client-$n.stderr tmp=$OUT/scn-client.json
  local bound=$(( WARMUP + SECS + 2 * BENCH_TIMEOUT + 15 ))
  local stree ctree s0 s1 k0 k1 c0 c1 t0 t1 bp
  echo "--- $(date +%T) $*" >> "$errlog"
  : > "$tmp"
  mapfile -t stree < <(descendants "${SPID[$n]}")
  if [[ $from == 0 ]]; then s0=$(tree_cpu "${stree[@]}"); k0=$(tree_sys "${stree[@]}"); t0=$(now); fi
  timeout -s KILL "$bound" taskset -c "$CLIENT_CPU" "$DUPLEX" bench "$@" \
    --timeout "$BENCH_TIMEOUT" --json > "$tmp" 2>> "$errlog" &
  bp=$!
  c0=0 c1=0
  if [[ $from != 0 ]]; then
    sleep "$from"
    mapfile -t ctree < <(descendants "$bp")
    s0=$(tree_cpu "${stree[@]}"); k0=$(tree_sys "${stree[@]}"); c0=$(tree_cpu "${ctree[@]}"); t0=$(now)
    sleep "$len"
    s1=$(tree_cpu "${stree[@]}"); k1=$(tree_sys "${stree[@]}"); c1=$(tree_cpu "${ctree[@]}"); t1=$(now)
  fi
  wait "$bp" || true
  if [[ $from == 0 ]]; then s1=$(tree_cpu "${stree[@]}"); k1=$(tree_sys "${stree[@]}"); t1=$(now); fi
  R_LINE=$(grep -m1 '^{' "$tmp" || true)
  R_SJIF=$(( s1 - s0 ))
  R_SSYS=$(awk -v k=$(( k1 - k0 )) -v c="$R_SJIF" 'BEGIN { printf "%.0f", (c > 0) ? 100 * k / c : 0 }')
  R_SCPU=$(awk -v d="$R_SJIF" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.0f", (t1 > t0) ? 100 * d / hz / (t1 - t0) : 0 }')
  R_CCPU=$(awk -v d=$(( c1 - c0 )) -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.0f", (t1 > t0) ? 100 * d / hz / (t1 - t0) : 0 }')
}
jget() { # key: its value in R_LINE (numbers, null; strings with quotes)
  sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" <<< "$R_LINE"
}
num() { local v; v=$(jget "$1"); [[ -z $v || $v == null ]] && v=0; echo "$v"; }
client_reason() { # last line of the client's stderr
  { grep -v '^---' "$OUT/scn-client-$1.stderr" 2>/dev/null || true; } | tail -1 | cut -c1-100
}
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2fx}" 'BEGIN { if (b > 0) printf f, a / b; else printf "n/a" }'; }

echo "scenarios.sh: ${SCENARIOS}; warm-up ${WARMUP}s, window ${SECS}s, $RUNS run(s); server on CPU $SERVER_CPU, client (duplex bench) on CPU $CLIENT_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
RESULTS=$OUT/scenarios-results.jsonl
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
REPORT=()

# ---- broadcast -------------------------------------------------------------------
broadcast() { # depth
  local d=$1 s="broadcast-d$1" n r vals tbl json first
  declare -A BROKEN=() RATE=() P50=() P99=() LOST=() ERRS=() SCPU=() SSYS=() CCPU=()
  CMD[duplex-luajit]="build/luajit/duplex run lua/duplex/bench_app.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
  CMD[duplex-lua5.4]="build/lua5.4/duplex run lua/duplex/bench_app.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
  CMD[node-ws]="node bench/ws-broadcast-server.js --host $HOST --port 0"
  CMD[uws-cpp]="$OUT/uws-echo-server --host $HOST --port 0"   # path /broadcast
  local life=$(( ${#BNAMES[@]} * (30 + RUNS * (WARMUP + SECS + 30)) + 60 ))
  local args=(broadcast --connections "$BCAST_SUBS" --depth "$d" --size "$BCAST_SIZE")
  note "scenario $s: $BCAST_SUBS subscribers, 1 publisher, $d in flight, $BCAST_SIZE B text"
  for n in "${BNAMES[@]}"; do
    if [[ -n ${BROKEN_ALL[$n]:-} ]]; then BROKEN[$n]=${BROKEN_ALL[$n]}; continue; fi
    start_server "$n" "$life" "scn-$n"
    [[ -n $WHY ]] && BROKEN[$n]=$WHY
  done
  for n in "${BNAMES[@]}"; do   # smoke: 1 s, nothing wrong or lost
    [[ -n ${BROKEN[$n]:-} ]] && continue
    bench_run "$n" 0 0 "${args[@]}" --url "ws://$HOST:${PORT[$n]}/broadcast" --warmup 0 --seconds 1
    if [[ -z $R_LINE ]]; then
      BROKEN[$n]="smoke: no result: $(client_reason "$n")"
    elif [[ $(num errors) != 0 || $(num lost) != 0 || $(num messages) == 0 ]]; then
      BROKEN[$n]="smoke: $(num errors) errors, $(num lost) lost, $(num messages) deliveries: $(jget first_error)"
    fi
    [[ -n ${BROKEN[$n]:-} ]] && note "$n broken in $s: ${BROKEN[$n]}"
  done
  for r in $(seq "$RUNS"); do
    for n in "${BNAMES[@]}"; do
      [[ -n ${BROKEN[$n]:-} ]] && continue
      if ! kill -0 "${SPID[$n]}" 2>/dev/null; then
        BROKEN[$n]="died before run $r (see $OUT/scn-$n.stderr)"; continue
      fi
      bench_run "$n" "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.8 }')" \
        "$(awk -v t="$SECS" 'BEGIN { print t - 1.2 }')" "${args[@]}" \
        --url "ws://$HOST:${PORT[$n]}/broadcast" --warmup "$WARMUP" --seconds "$SECS"
      if [[ -z $R_LINE ]]; then
        RATE[$n,$r]=0 P50[$n,$r]=0 P99[$n,$r]=0 LOST[$n,$r]=0 ERRS[$n,$r]=1
        SCPU[$n,$r]=0 SSYS[$n,$r]=0 CCPU[$n,$r]=0
        note "run $r $n: no result: $(client_reason "$n")"
        continue
      fi
      RATE[$n,$r]=$(printf '%.0f' "$(num throughput)")
      P50[$n,$r]=$(num p50_us) P99[$n,$r]=$(num p99_us)
      LOST[$n,$r]=$(num lost) ERRS[$n,$r]=$(num errors)
      SCPU[$n,$r]=$R_SCPU SSYS[$n,$r]=$R_SSYS CCPU[$n,$r]=$R_CCPU
      printf 'run %d %s %-14s %8s deliveries/s  p50 %7.0f us  p99 %7.0f us  lost %s  errors %s  server cpu %s%%  client cpu %s%%\n' \
        "$r" "$s" "$n" "${RATE[$n,$r]}" "${P50[$n,$r]}" "${P99[$n,$r]}" "${LOST[$n,$r]}" \
        "${ERRS[$n,$r]}" "${SCPU[$n,$r]}" "${CCPU[$n,$r]}" >&2
    done
  done
  stop_servers "${BNAMES[@]}"

  declare -A MED=()
  for n in "${BNAMES[@]}"; do
    [[ -n ${BROKEN[$n]:-} ]] && continue
    vals=(); for r in $(seq "$RUNS"); do vals+=("${RATE[$n,$r]}"); done
    MED[$n]=$(median "${vals[@]}")
  done
  local ref=${MED[$REF]:-0} refruns="" r
  for r in $(seq "$RUNS"); do refruns+="${RATE[$REF,$r]:-0} "; done
  tbl=$(
    echo
    echo "broadcast, $d in flight: $BCAST_SUBS subscribers + 1 publisher, $BCAST_SIZE B text, ${SECS}s window after ${WARMUP}s warm-up, $RUNS run(s); client duplex bench"
    printf '%-14s | %-26s | %8s | %-15s | %9s | %9s | %9s | %6s | %6s | %7s | %7s | %7s\n' \
      server "runs deliveries/s" median "min-max" "vs luajit" "p50" "p99" lost errors "srv cpu" "kernel" "cli cpu"
    echo "---------------+----------------------------+----------+-----------------+-----------+-----------+-----------+--------+--------+---------+---------+--------"
    for n in "${BNAMES[@]}"; do
      if [[ -n ${BROKEN[$n]:-} ]]; then printf '%-14s | broken: %s\n' "$n" "${BROKEN[$n]}"; continue; fi
      local runs="" rr=() p5=() p9=() sc=() ks=() cc=() lost=0 errs=0
      for r in $(seq "$RUNS"); do
        runs+="${RATE[$n,$r]} "; rr+=("${RATE[$n,$r]}")
        p5+=("${P50[$n,$r]}"); p9+=("${P99[$n,$r]}"); sc+=("${SCPU[$n,$r]}"); ks+=("${SSYS[$n,$r]}"); cc+=("${CCPU[$n,$r]}")
        lost=$(( lost + ${LOST[$n,$r]} )); errs=$(( errs + ${ERRS[$n,$r]} ))
      done
      printf '%-14s | %-26s | %8.0f | %-15s | %9s | %6.0f us | %6.0f us | %6d | %6d | %6.0f%% | %6.0f%% | %6.0f%%\n' \
        "$n" "$runs" "${MED[$n]}" "$(minmax "${rr[@]}")" "$(paired_ratio "${rr[*]}" "$refruns")" \
        "$(median "${p5[@]}")" "$(median "${p9[@]}")" "$lost" "$errs" \
        "$(median "${sc[@]}")" "$(median "${ks[@]}")" "$(median "${cc[@]}")"
    done
  )
  echo "$tbl" >&2
  REPORT+=("$tbl")

  json="{\"time\":\"$STAMP\",\"scenario\":\"$s\",\"subscribers\":$BCAST_SUBS,\"depth\":$d,\"size\":$BCAST_SIZE,\"type\":\"text\",\"warmup_s\":$WARMUP,\"window_s\":$SECS,\"runs\":$RUNS,\"server_cpu\":$SERVER_CPU,\"client_cpu\":$CLIENT_CPU,\"client\":\"duplex bench\",\"ref\":\"$REF\",\"servers\":{"
  first=1
  for n in "${BNAMES[@]}"; do
    (( first )) || json+=","; first=0
    if [[ -n ${BROKEN[$n]:-} ]]; then json+="$(json_str "$n"):{\"broken\":$(json_str "${BROKEN[$n]}")}"; continue; fi
    local rr=() p5=() p9=() sc=() ks=() cc=() lost=0 errs=0
    for r in $(seq "$RUNS"); do
      rr+=("${RATE[$n,$r]}"); p5+=("${P50[$n,$r]}"); p9+=("${P99[$n,$r]}")
      sc+=("${SCPU[$n,$r]}"); ks+=("${SSYS[$n,$r]}"); cc+=("${CCPU[$n,$r]}")
      lost=$(( lost + ${LOST[$n,$r]} )); errs=$(( errs + ${ERRS[$n,$r]} ))
    done
    json+="$(json_str "$n"):{\"deliveries_per_s\":[$(IFS=,; echo "${rr[*]}")],\"median_deliveries_per_s\":${MED[$n]},\"ratio_vs_ref\":$(ratio "${MED[$n]}" "$ref" %.3f | sed 's|n/a|null|'),\"paired_ratio_vs_ref\":$(paired_ratio "${rr[*]}" "$refruns" %.3f | sed 's|n/a|null|'),\"p50_us\":$(median "${p5[@]}"),\"p99_us\":$(median "${p9[@]}"),\"lost\":$lost,\"errors\":$errs,\"server_cpu_pct\":$(median "${sc[@]}"),\"server_kernel_pct\":$(median "${ks[@]}"),\"client_cpu_pct\":$(median "${cc[@]}")}"
  done
  json+="}}"
  echo "$json" >> "$RESULTS"
}

# ---- connect -----------------------------------------------------------------------
connect() {
  local s=connect n r tbl json first rpid
  declare -A BROKEN=() RATE=() RSSC=() RSSA=() SMS=() ERRS=() RPID=()
  CMD[duplex-luajit]="build/luajit/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
  CMD[duplex-lua5.4]="build/lua5.4/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
  CMD[node-ws]="node bench/ws-echo-server.js --host $HOST --port 0"
  CMD[nginx-lua]="bench/nginx/serve.sh --host $HOST --port 0 --rundir $OUT/nginx-run"
  CMD[lws-c]="$OUT/lws-echo-server --host $HOST --port 0"
  CMD[uws-cpp]="$OUT/uws-echo-server --host $HOST --port 0"
  note "scenario connect: $CONNECT_N connections, $CONNECT_CONC at a time, a fresh server per run"
  for r in $(seq "$RUNS"); do
    for n in "${CNAMES[@]}"; do
      if [[ -n ${BROKEN_ALL[$n]:-} ]]; then BROKEN[$n]=${BROKEN_ALL[$n]}; continue; fi
      [[ -n ${BROKEN[$n]:-} ]] && continue
      start_server "$n" $(( 2 * BENCH_TIMEOUT + 60 )) "scn-$n"
      if [[ -n $WHY ]]; then BROKEN[$n]=$WHY; stop_servers "$n"; continue; fi
      # the process holding the connections: nginx's one worker, else the server
      rpid=${SPID[$n]}
      if [[ $n == nginx-lua ]]; then
        rpid=""
        for _ in $(seq 20); do
          for p in $(descendants "${SPID[$n]}"); do
            grep -q 'worker process' "/proc/$p/cmdline" 2>/dev/null && rpid=$p
          done
          [[ -n $rpid ]] && break
          sleep 0.1
        done
        [[ -n $rpid ]] || { BROKEN[$n]="no nginx worker found"; stop_servers "$n"; continue; }
      fi
      RPID[$n]=$([[ $n == nginx-lua ]] && echo worker || echo main)
      sleep 0.3   # let it settle (nginx: the worker's Lua VM)
      bench_run "$n" 0 0 connect --url "ws://$HOST:${PORT[$n]}/" \
        --connections "$CONNECT_N" --concurrency "$CONNECT_CONC" --server-pid "$rpid"
      stop_servers "$n"
      if [[ -z $R_LINE ]]; then
        RATE[$n,$r]=0 RSSC[$n,$r]=0 RSSA[$n,$r]=0 SMS[$n,$r]=0 ERRS[$n,$r]=1
        note "run $r $n: no result: $(client_reason "$n")"
        continue
      fi
      RATE[$n,$r]=$(printf '%.0f' "$(num handshakes_per_s)")
      RSSC[$n,$r]=$(printf '%.0f' "$(num rss_per_conn)")
      RSSA[$n,$r]=$(awk -v b="$(num rss_after)" 'BEGIN { printf "%.1f", b / 1048576 }')
      ERRS[$n,$r]=$(num errors)
      # server CPU (whole tree) over the run: opening and closing them all
      SMS[$n,$r]=$(awk -v j="$R_SJIF" -v hz="$CLK_TCK" -v o="$(num opened)" \
        'BEGIN { printf "%.0f", (o > 0) ? 1000 * j / hz / (o / 1000) : 0 }')
      printf 'run %d connect %-14s %7s handshakes/s  opened %s  rss %s B/conn (%s MiB after, %s pid)  server %s ms cpu/1k conns  errors %s\n' \
        "$r" "$n" "${RATE[$n,$r]}" "$(num opened)" "${RSSC[$n,$r]}" "${RSSA[$n,$r]}" "${RPID[$n]}" \
        "${SMS[$n,$r]}" "${ERRS[$n,$r]}" >&2
      (( ${ERRS[$n,$r]} )) && note "  first error: $(jget first_error)"
    done
  done

  declare -A MED=()
  for n in "${CNAMES[@]}"; do
    [[ -n ${BROKEN[$n]:-} ]] && continue
    vals=(); for r in $(seq "$RUNS"); do vals+=("${RATE[$n,$r]:-0}"); done
    MED[$n]=$(median "${vals[@]}")
  done
  local ref=${MED[$REF]:-0} refruns="" r
  for r in $(seq "$RUNS"); do refruns+="${RATE[$REF,$r]:-0} "; done
  tbl=$(
    echo
    echo "connect: $CONNECT_N connections, $CONNECT_CONC at a time, fresh server per run, $RUNS run(s); client duplex bench"
    printf '%-14s | %-22s | %7s | %-13s | %9s | %-20s | %7s | %-8s | %12s | %6s\n' \
      server "runs handshakes/s" median "min-max" "vs luajit" "rss B/conn (min-max)" "rss MiB" "rss of" "cpu ms/1k" errors
    echo "---------------+------------------------+---------+---------------+-----------+----------------------+---------+----------+--------------+-------"
    for n in "${CNAMES[@]}"; do
      if [[ -n ${BROKEN[$n]:-} ]]; then printf '%-14s | broken: %s\n' "$n" "${BROKEN[$n]}"; continue; fi
      local runs="" rr=() rc=() ra=() sm=() errs=0
      for r in $(seq "$RUNS"); do
        runs+="${RATE[$n,$r]:-0} "; rr+=("${RATE[$n,$r]:-0}")
        rc+=("${RSSC[$n,$r]:-0}"); ra+=("${RSSA[$n,$r]:-0}"); sm+=("${SMS[$n,$r]:-0}")
        errs=$(( errs + ${ERRS[$n,$r]:-0} ))
      done
      printf '%-14s | %-22s | %7.0f | %-13s | %9s | %-20s | %7s | %-8s | %12s | %6d\n' \
        "$n" "$runs" "${MED[$n]}" "$(minmax "${rr[@]}")" "$(paired_ratio "${rr[*]}" "$refruns")" \
        "$(printf '%.0f' "$(median "${rc[@]}")") ($(minmax "${rc[@]}"))" "$(median "${ra[@]}")" \
        "${RPID[$n]}" "$(median "${sm[@]}")" "$errs"
    done
  )
  echo "$tbl" >&2
  REPORT+=("$tbl")

  json="{\"time\":\"$STAMP\",\"scenario\":\"connect\",\"connections\":$CONNECT_N,\"concurrency\":$CONNECT_CONC,\"runs\":$RUNS,\"server_cpu\":$SERVER_CPU,\"client_cpu\":$CLIENT_CPU,\"client\":\"duplex bench\",\"ref\":\"$REF\",\"servers\":{"
  first=1
  for n in "${CNAMES[@]}"; do
    (( first )) || json+=","; first=0
    if [[ -n ${BROKEN[$n]:-} ]]; then json+="$(json_str "$n"):{\"broken\":$(json_str "${BROKEN[$n]}")}"; continue; fi
    local rr=() rc=() sm=() errs=0
    for r in $(seq "$RUNS"); do
      rr+=("${RATE[$n,$r]:-0}"); rc+=("${RSSC[$n,$r]:-0}"); sm+=("${SMS[$n,$r]:-0}")
      errs=$(( errs + ${ERRS[$n,$r]:-0} ))
    done
    json+="$(json_str "$n"):{\"handshakes_per_s\":[$(IFS=,; echo "${rr[*]}")],\"median_handshakes_per_s\":${MED[$n]},\"ratio_vs_ref\":$(ratio "${MED[$n]}" "$ref" %.3f | sed 's|n/a|null|'),\"paired_ratio_vs_ref\":$(paired_ratio "${rr[*]}" "$refruns" %.3f | sed 's|n/a|null|'),\"rss_per_conn_bytes\":[$(IFS=,; echo "${rc[*]}")],\"median_rss_per_conn_bytes\":$(median "${rc[@]}"),\"rss_process\":\"${RPID[$n]}\",\"server_cpu_ms_per_1k_conns\":$(median "${sm[@]}"),\"errors\":$errs}"
  done
  json+="}}"
  echo "$json" >> "$RESULTS"
}

for s in $SCENARIOS; do
  case $s in
    broadcast) for d in $BCAST_DEPTHS; do broadcast "$d"; done ;;
    connect) connect ;;
  esac
done

echo
echo "==== broadcast / connect (load average now $(cut -d' ' -f1-3 /proc/loadavg)) ===="
for t in "${REPORT[@]}"; do echo "$t"; done
echo
echo "(vs luajit: the median of the run-by-run ratios to $REF's (run r of every server is one round: the machine's"
echo " drift between rounds cancels; the JSON has the ratio of medians too); min-max: spread over the runs. broadcast: deliveries/s = messages"
echo " received by subscribers per second; p50/p99 publish->delivery latency, median over runs; lost and errors summed"
echo " over the timed runs; srv cpu: the server's process tree, cli cpu: duplex bench, % of one core sampled inside the"
echo " window; kernel: the part of srv cpu spent in the kernel (a send per subscriber, and the loopback TCP work it does). connect: handshakes/s = opened / time to open all; rss B/conn = (VmRSS when all are open - before) / N"
echo " of the process in 'rss of' (nginx: its one worker; the master holds no connection); cpu ms/1k: the server"
echo " tree's CPU over the run (open + close) per 1000 connections, 10 ms resolution.)"
echo
tail -n "$(( ${#REPORT[@]} ))" "$RESULTS"

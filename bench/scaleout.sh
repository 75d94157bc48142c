#!/usr/bin/env bash
# Scale-out figures: what workers, the Redis broker, and history with
# presence cost or give, with duplex's own load generator (`duplex bench`).
#
#   bench/scaleout.sh [SECONDS]     (broadcast window per run, default 5)
#
# Scenarios (SCALE_SCENARIOS, default "workers redis memory"):
#   workers  BCAST_SUBS (1000) subscribers + 1 publisher, BCAST_SIZE (32) B
#            text, BCAST_DEPTHS ("1 8") in flight, through
#            lua/duplex/bench_app.lua run by
#              single     one process (the default, the memory engine)
#              workers-2  --workers 2: a supervisor and 2 workers; the
#                         subscribers spread over both, a publication
#                         goes to the other worker through the hub
#   redis    the same load across two nodes: one redis-server (started
#            here on a free port, in a temporary directory of its own,
#            stopped after), nodes A and B (`duplex run bench_app.lua
#            --broker redis://...`); the subscribers on B, the publisher
#            on A (duplex bench broadcast --publish-url), so every
#            delivery crossed Redis:
#              cross-node publisher on A, subscribers on B
#              same-node  both on B (a node with the Redis broker serving
#                         its own subscribers: the local path, for scale)
#   memory   MEM_N (10000) idle connections opened by `duplex bench
#            connect` against a fresh bench/scaleout_app.lua (one
#            process) per run: server RSS growth per connection for
#              plain      an idle connection (what the connect scenario of
#                         bench/scenarios.sh measures)
#              subscribed subscribed to a topic with history (MEM_ROOMS,
#                         100, topics "room:K")
#              presence   the same with presence = { name = ... }
#            Every room's history is filled first (MEM_FILL, 50, the rule's
#            size) and the app reports what it saw once all are open: a
#            run where not every connection was subscribed (or in
#            presence) as its kind says is noted and the table marked.
#
# Broadcast figures: deliveries/s (messages received by subscribers, per
# second of the window), p50/p99 publish -> receive latency (the generator
# stamps its clock into each message and holds both ends), lost, errors,
# and the server's CPU: utime + stime from /proc of every process of the
# server (the supervisor and every worker, or both nodes), summed over a
# sample inside the timed window, as % of one core and per delivery (ns of
# CPU / deliveries in the sample); redis-server's apart (% of one core).
# On a 2-core machine where the generator needs one core, the workers
# cannot show their throughput: the CPU per delivery is the meaningful
# figure there.
#
# Environment: RUNS (3), WARMUP (2 s), QUICK=1 (1 run, 1 s warm-up, 2 s
# window), VM (luajit: build/VM/duplex serves and loads), CLIENT_CPU (0:
# the generator pinned there), SERVER_CPU (every CPU: the servers are not
# pinned to one, so workers can spread), and the variables above. Runs
# are interleaved (run 1 of each configuration, then run 2, ...). Every
# process started here is bounded in time (timeout) and stopped on exit;
# loopback only; temporary files in a directory of its own.
#
# Output: progress on stderr; the tables on stdout at the end, and one JSON
# line per table appended to bench/out/scaleout-results.jsonl.
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  SECS=${1:-2}; WARMUP=${WARMUP:-1}; RUNS=${RUNS:-1}
else
  SECS=${1:-5}; WARMUP=${WARMUP:-2}; RUNS=${RUNS:-3}
fi
VM=${VM:-luajit}
SCALE_SCENARIOS=${SCALE_SCENARIOS:-workers redis memory}
BCAST_SUBS=${BCAST_SUBS:-1000}
BCAST_SIZE=${BCAST_SIZE:-32}
BCAST_DEPTHS=${BCAST_DEPTHS:-1 8}
MEM_N=${MEM_N:-10000}
MEM_ROOMS=${MEM_ROOMS:-100}
MEM_FILL=${MEM_FILL:-50}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-0-$(( $(nproc) - 1 ))}
HOST=127.0.0.1
BENCH_TIMEOUT=10

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)
PROG=scaleout.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

[[ $SECS =~ ^[0-9]+$ && $SECS -ge 2 ]] || die "SECONDS must be a whole number >= 2"
for s in $SCALE_SCENARIOS; do
  case $s in workers|redis|memory) ;; *) die "unknown scenario '$s' (workers, redis, memory)" ;; esac
done
[[ -x build/$VM/duplex ]] || { note "building duplex (make build)"; timeout 900 make build >&2 || die "make build failed"; }
DUPLEX=$ROOT/build/$VM/duplex
TMP=$(mktemp -d -t duplex-scaleout.XXXXXX)
REDIS_PID=""

cleanup() {
  stop_servers
  if [[ -n $REDIS_PID ]]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A redis-server of our own: free port, its directory in TMP, no
# persistence. Sets REDIS_PID, REDIS_PORT.
start_redis() {
  local dir=$TMP/redis
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  timeout -s TERM 3600 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
    --save "" --appendonly no --daemonize no --logfile "$dir/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 50); do
    grep -q "Ready to accept connections" "$dir/redis.log" 2>/dev/null && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  die "redis-server did not start: $(tail -1 "$dir/redis.log" 2>/dev/null)"
}

jget() { # key: its value in R_LINE
  sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" <<< "$R_LINE"
}
num() { local v; v=$(jget "$1"); [[ -z $v || $v == null ]] && v=0; echo "$v"; }

# One broadcast run: subscribers at url, the publisher at puburl (or url),
# the servers' CPU sampled from WARMUP + 0.4 s after the subscribers are
# all open (ss) for SECS - 0.8 s.
# servers: the names whose process trees are summed. Sets R_LINE, R_SJIF
# (server jiffies in the sample), R_RJIF (redis-server's), R_T (sample s).
bcast_run() { # "servers" url puburl depth
  local srvnames=$1 url=$2 pub=$3 d=$4 n bp s0 s1 r0 r1 t0 t1 tmp=$TMP/bench.json
  local errlog=$OUT/scaleout-client.stderr trees=()
  local args=(broadcast --connections "$BCAST_SUBS" --depth "$d" --size "$BCAST_SIZE"
    --url "$url" --warmup "$WARMUP" --seconds "$SECS" --timeout "$BENCH_TIMEOUT" --json)
  [[ -n $pub ]] && args+=(--publish-url "$pub")
  echo "--- $(date +%T) ${args[*]}" >> "$errlog"
  # the last run's connections gone first (up to 10 s): counted open,
  # they would start the sample before this run's subscribers are
  local sport=${url#ws://"$HOST":}; sport=${sport%%/*} t_open=100
  while (( t_open-- > 0 )) &&
        (( $(ss -Htn "( sport = :$sport or dport = :$sport )" 2>/dev/null | wc -l) > 0 )); do
    sleep 0.1
  done
  : > "$tmp"
  timeout -s KILL $(( WARMUP + SECS + 2 * BENCH_TIMEOUT + 15 )) taskset -c "$CLIENT_CPU" \
    "$DUPLEX" bench "${args[@]}" > "$tmp" 2>> "$errlog" &
  bp=$!
  # the warm-up starts when every subscriber is open: wait for them (the
  # server side of the connections to the subscribers' port), so that the
  # sample lies inside the window however long connecting took
  t_open=$(( BENCH_TIMEOUT * 10 ))
  while (( t_open-- > 0 )) && kill -0 "$bp" 2>/dev/null &&
        (( $(ss -Htn state established "( sport = :$sport )" 2>/dev/null | wc -l) < BCAST_SUBS )); do
    sleep 0.1
  done
  sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.4 }')"
  for n in $srvnames; do mapfile -t -O "${#trees[@]}" trees < <(descendants "${SPID[$n]}"); done
  s0=$(tree_cpu "${trees[@]}"); r0=0; [[ -n $REDIS_PID ]] && r0=$(tree_cpu "$(pgrep -P "$REDIS_PID" || echo "$REDIS_PID")")
  t0=$(now)
  sleep "$(awk -v t="$SECS" 'BEGIN { print t - 0.8 }')"
  s1=$(tree_cpu "${trees[@]}"); r1=0; [[ -n $REDIS_PID ]] && r1=$(tree_cpu "$(pgrep -P "$REDIS_PID" || echo "$REDIS_PID")")
  t1=$(now)
  wait "$bp" || true
  R_LINE=$(grep -m1 '^{' "$tmp" || true)
  R_SJIF=$(( s1 - s0 )) R_RJIF=$(( r1 - r0 ))
  R_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
}

STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
RESULTS=$OUT/scaleout-results.jsonl
REPORT=()
echo "scaleout.sh: ${SCALE_SCENARIOS}; $VM; warm-up ${WARMUP}s, window ${SECS}s, $RUNS run(s); client on CPU $CLIENT_CPU, servers on CPUs $SERVER_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Broadcast over the configurations CONFS (names), each "servers|sub-server|pub-server".
declare -A CONF
broadcast_table() { # title depth confs...
  local title=$1 d=$2; shift 2
  local confs=("$@") c r srvs sub pub tbl json first
  declare -A RATE=() P50=() P99=() LOST=() ERRS=() CPU=() NSPER=() RNS=()
  for r in $(seq "$RUNS"); do
    for c in "${confs[@]}"; do
      IFS='|' read -r srvs sub pub <<< "${CONF[$c]}"
      bcast_run "$srvs" "ws://$HOST:${PORT[$sub]}/broadcast" \
        "$([[ $pub != "$sub" ]] && echo "ws://$HOST:${PORT[$pub]}/broadcast")" "$d"
      if [[ -z $R_LINE ]]; then
        note "run $r $c: no result: $(grep -v '^---' "$OUT/scaleout-client.stderr" | tail -1 | cut -c1-120)"
        RATE[$c,$r]=0 P50[$c,$r]=0 P99[$c,$r]=0 LOST[$c,$r]=0 ERRS[$c,$r]=1 CPU[$c,$r]=0 NSPER[$c,$r]=0 RNS[$c,$r]=0
        continue
      fi
      RATE[$c,$r]=$(printf '%.0f' "$(num throughput)")
      P50[$c,$r]=$(num p50_us) P99[$c,$r]=$(num p99_us) LOST[$c,$r]=$(num lost) ERRS[$c,$r]=$(num errors)
      read -r CPU[$c,$r] NSPER[$c,$r] RNS[$c,$r] < <(awk -v j="$R_SJIF" -v rj="$R_RJIF" -v t="$R_T" \
        -v hz="$CLK_TCK" -v rate="${RATE[$c,$r]}" 'BEGIN {
          d = rate * t; printf "%.0f %.0f %.0f\n", 100 * j / hz / t,
            (d > 0) ? j / hz * 1e9 / d : 0, 100 * rj / hz / t }')
      printf 'run %d %-10s d%s %8s deliveries/s  p50 %6.0f us  p99 %6.0f us  lost %s  errors %s  server cpu %s%%  %s ns/delivery  redis cpu %s%%\n' \
        "$r" "$c" "$d" "${RATE[$c,$r]}" "${P50[$c,$r]}" "${P99[$c,$r]}" "${LOST[$c,$r]}" "${ERRS[$c,$r]}" \
        "${CPU[$c,$r]}" "${NSPER[$c,$r]}" "${RNS[$c,$r]}" >&2
    done
  done
  tbl=$(
    echo
    echo "$title, $d in flight: $BCAST_SUBS subscribers + 1 publisher, $BCAST_SIZE B text, ${SECS}s window after ${WARMUP}s warm-up, $RUNS run(s); $VM"
    printf '%-10s | %-22s | %7s | %-13s | %7s | %7s | %5s | %5s | %-7s | %-22s | %s\n' \
      config "runs deliveries/s" median "min-max" "p50 us" "p99 us" lost errs "srv cpu" "srv ns/delivery (min-max)" "redis cpu"
    echo "-----------+------------------------+---------+---------------+---------+---------+-------+-------+---------+----------------------------+------------------"
    for c in "${confs[@]}"; do
      local runs="" rr=() p5=() p9=() cp=() ns=() rn=() lost=0 errs=0
      for r in $(seq "$RUNS"); do
        runs+="${RATE[$c,$r]} "; rr+=("${RATE[$c,$r]}"); p5+=("${P50[$c,$r]}"); p9+=("${P99[$c,$r]}")
        cp+=("${CPU[$c,$r]}"); ns+=("${NSPER[$c,$r]}"); rn+=("${RNS[$c,$r]}")
        lost=$(( lost + ${LOST[$c,$r]} )); errs=$(( errs + ${ERRS[$c,$r]} ))
      done
      printf '%-10s | %-22s | %7.0f | %-13s | %7.0f | %7.0f | %5d | %5d | %6.0f%% | %-26s | %s\n' \
        "$c" "$runs" "$(median "${rr[@]}")" "$(minmax "${rr[@]}")" "$(median "${p5[@]}")" "$(median "${p9[@]}")" \
        "$lost" "$errs" "$(median "${cp[@]}")" "$(median "${ns[@]}") ($(minmax "${ns[@]}"))" \
        "$([[ -n $REDIS_PID ]] && echo "$(median "${rn[@]}")%" || echo -)"
    done
  )
  echo "$tbl" >&2
  REPORT+=("$tbl")
  json="{\"time\":\"$STAMP\",\"scenario\":$(json_str "$title"),\"subscribers\":$BCAST_SUBS,\"depth\":$d,\"size\":$BCAST_SIZE,\"vm\":\"$VM\",\"warmup_s\":$WARMUP,\"window_s\":$SECS,\"runs\":$RUNS,\"configs\":{"
  first=1
  for c in "${confs[@]}"; do
    (( first )) || json+=","; first=0
    local rr=() p5=() p9=() ns=() rn=() lost=0 errs=0
    for r in $(seq "$RUNS"); do
      rr+=("${RATE[$c,$r]}"); p5+=("${P50[$c,$r]}"); p9+=("${P99[$c,$r]}"); ns+=("${NSPER[$c,$r]}"); rn+=("${RNS[$c,$r]}")
      lost=$(( lost + ${LOST[$c,$r]} )); errs=$(( errs + ${ERRS[$c,$r]} ))
    done
    json+="$(json_str "$c"):{\"deliveries_per_s\":[$(IFS=,; echo "${rr[*]}")],\"p50_us\":[$(IFS=,; echo "${p5[*]}")],\"p99_us\":[$(IFS=,; echo "${p9[*]}")],\"server_cpu_ns_per_delivery\":[$(IFS=,; echo "${ns[*]}")],\"redis_cpu_pct\":[$(IFS=,; echo "${rn[*]}")],\"lost\":$lost,\"errors\":$errs}"
  done
  json+="}}"
  echo "$json" >> "$RESULTS"
}

start_or_die() { # name
  start_server "$1" 3600 "scaleout-$1"
  [[ -z $WHY ]] || die "$1: $WHY (see $OUT/scaleout-$1.stderr)"
}

APP=lua/duplex/bench_app.lua
for s in $SCALE_SCENARIOS; do
  case $s in
  workers)
    CMD[single]="$DUPLEX run $APP --host $HOST --port 0 $DUPLEX_UNLIMITED"
    CMD[workers-2]="$DUPLEX run $APP --host $HOST --port 0 $DUPLEX_UNLIMITED --workers 2"
    start_or_die single; start_or_die workers-2
    CONF[single]="single|single|single" CONF[workers-2]="workers-2|workers-2|workers-2"
    for d in $BCAST_DEPTHS; do broadcast_table "workers" "$d" single workers-2; done
    stop_servers single workers-2
    ;;
  redis)
    command -v redis-server >/dev/null || die "redis-server is needed (make deps)"
    start_redis
    CMD[node-a]="$DUPLEX run $APP --host $HOST --port 0 $DUPLEX_UNLIMITED --broker redis://127.0.0.1:$REDIS_PORT/0"
    CMD[node-b]="$DUPLEX run $APP --host $HOST --port 0 $DUPLEX_UNLIMITED --broker redis://127.0.0.1:$REDIS_PORT/0"
    start_or_die node-a; start_or_die node-b
    CONF[cross-node]="node-a node-b|node-b|node-a" CONF[same-node]="node-a node-b|node-b|node-b"
    for d in $BCAST_DEPTHS; do broadcast_table "redis (2 nodes, one redis-server)" "$d" cross-node same-node; done
    stop_servers node-a node-b
    kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""
    ;;
  memory)
    declare -A MPATH=([plain]=/ [subscribed]=/subscribed [presence]=/presence)
    declare -A RSS=()
    CMD[mem]="env DUPLEX_ROOMS=$MEM_ROOMS DUPLEX_HISTORY_FILL=$MEM_FILL DUPLEX_EXPECT=$MEM_N $DUPLEX run bench/scaleout_app.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
    note "scenario memory: $MEM_N idle connections, a fresh server per run"
    MEM_BAD=0
    for r in $(seq "$RUNS"); do
      for k in plain subscribed presence; do
        start_or_die mem
        # the rooms' histories are filled before the memory is read
        for _ in $(seq 100); do grep -q '^history filled' "$OUT/scaleout-mem.stderr" && break; sleep 0.1; done
        grep -q '^history filled' "$OUT/scaleout-mem.stderr" || die "memory: the app did not fill the histories (see $OUT/scaleout-mem.stderr)"
        sleep 0.2
        R_LINE=$(taskset -c "$CLIENT_CPU" "$DUPLEX" bench connect --url "ws://$HOST:${PORT[mem]}${MPATH[$k]}" \
          --connections "$MEM_N" --server-pid "${SPID[mem]}" --timeout 30 --json 2>> "$OUT/scaleout-client.stderr" | grep -m1 '^{' || true)
        RSS[$k,$r]=$(printf '%.0f' "$(num rss_per_conn)")
        [[ $(num opened) == "$MEM_N" ]] || { note "run $r $k: only $(num opened) of $MEM_N opened"; MEM_BAD=1; }
        # every connection subscribed (and in presence) as its kind says?
        for _ in $(seq 30); do grep -q '^check ' "$OUT/scaleout-mem.stderr" && break; sleep 0.1; done
        read -r _ _ mo _ ms _ mp < <(grep -m1 '^check ' "$OUT/scaleout-mem.stderr" || echo "check opened 0 subscribed 0 presence 0")
        case $k in plain) want="0 0" ;; subscribed) want="$MEM_N 0" ;; presence) want="$MEM_N $MEM_N" ;; esac
        if [[ $mo != "$MEM_N" || "$ms $mp" != "$want" ]]; then
          note "run $r $k: the app saw $mo opened, $ms subscribed, $mp in presence (expected $MEM_N, $want)"; MEM_BAD=1
        fi
        note "run $r $k: ${RSS[$k,$r]} bytes per connection (app: $mo opened, $ms subscribed, $mp in presence)"
        stop_servers mem
      done
    done
    tbl=$(
      echo
      echo "memory: $MEM_N idle connections, one process ($VM), server RSS growth per connection; topics room:0..$(( MEM_ROOMS - 1 )) with history (each filled with $MEM_FILL before); $RUNS run(s)$( (( MEM_BAD )) && echo "; CHECK FAILED: see the notes above")"
      printf '%-10s | %-22s | %8s | %-13s | %s\n' kind "runs B/conn" median "min-max" "vs plain"
      echo "-----------+------------------------+----------+---------------+---------"
      declare -A MED=()
      for k in plain subscribed presence; do
        vals=(); for r in $(seq "$RUNS"); do vals+=("${RSS[$k,$r]}"); done
        MED[$k]=$(median "${vals[@]}")
        printf '%-10s | %-22s | %8.0f | %-13s | %+.0f B\n' "$k" "${vals[*]}" "${MED[$k]}" "$(minmax "${vals[@]}")" \
          "$(awk -v a="${MED[$k]}" -v b="${MED[plain]}" 'BEGIN { print a - b }')"
      done
    )
    echo "$tbl" >&2
    REPORT+=("$tbl")
    json="{\"time\":\"$STAMP\",\"scenario\":\"memory\",\"connections\":$MEM_N,\"rooms\":$MEM_ROOMS,\"vm\":\"$VM\",\"runs\":$RUNS,\"rss_per_conn_bytes\":{"
    first=1
    for k in plain subscribed presence; do
      (( first )) || json+=","; first=0
      vals=(); for r in $(seq "$RUNS"); do vals+=("${RSS[$k,$r]}"); done
      json+="\"$k\":[$(IFS=,; echo "${vals[*]}")]"
    done
    echo "$json}}" >> "$RESULTS"
    ;;
  esac
done

echo
echo "==== scale-out (load average now $(cut -d' ' -f1-3 /proc/loadavg)) ===="
for t in "${REPORT[@]}"; do echo "$t"; done
echo
echo "(deliveries/s: messages received by subscribers per second of the window; p50/p99: publish -> receive, median"
echo " over runs; srv cpu: utime+stime of every server process (supervisor and workers; both nodes) in a sample"
echo " inside the window, % of one core; ns/delivery: that CPU / deliveries in the sample; redis cpu: redis-server's, % of one core."
echo " With 2 cores and the generator on one, workers cannot add throughput here: read the CPU per delivery."
echo " memory: (VmRSS when all are open - before) / N of the one server process.)"

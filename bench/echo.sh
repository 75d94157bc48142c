#!/usr/bin/env bash
# Echo throughput: duplex (LuaJIT, Lua 5.4) beside its peers, same client,
# same machine, same run:
#   duplex-luajit, duplex-lua5.4  build/<vm>/duplex run scripts/echo.lua
#   duplex-luajit-wss             the same over wss:// (--tls-cert/--tls-key, a
#   (duplex-lua5.4-wss: ask)      self-signed P-256 certificate made here; the
#                                 client connects with -S): TLS's cost beside ws
#   node-ws                       Node + `ws` (bench/ws-echo-server.js)
#   nginx-lua                     nginx + lua-nginx-module + lua-resty-websocket
#                                 (bench/nginx/: ONE worker process)
#   lws-c                         libwebsockets in C (bench/lws-echo-server.c)
#   uws-cpp (ask)                 uWebSockets in C++ (bench/uws-echo-server.cpp),
#                                 built from the source tree UWS_DIR names
#                                 (bench/lib.sh prepare_uws); not in the
#                                 default list: no package carries it
# Every server gets one core (one process or worker, pinned).
#
#   bench/echo.sh [SECONDS]        (measured window per run, default 5)
#
# Scenarios (SCENARIOS, default "A B C"), all echo:
#   A  100 conns x 16 in flight x 32 B text
#   B  1000 conns x 1 in flight x 1 KiB text
#   C  4 conns x 1 in flight x 64 KiB binary (MB/s reported too)
#   NAME=CONNS:DEPTH:SIZE:text|binary   a scenario of your own
# (CONNS, DEPTH, SIZE set without SCENARIOS: that one text scenario, as the
# script used to do.)
#
# Environment: WARMUP (s, default 2), RUNS (default 3), QUICK=1 (1 run,
# 1 s warm-up, 2 s window; explicit WARMUP/RUNS/SECONDS still win),
# SERVERS (default all but duplex-lua5.4-wss and uws-cpp, in the order
# above), UWS_DIR (and UWS_SOCKETS_DIR) for uws-cpp, CLIENT_ARGS (extra
# lws-echo-load flags, e.g. "-1"), SERVER_CPU (1) and CLIENT_CPU (0) for
# taskset. Defaults take about 7 minutes (3 scenarios x 5 servers x 3 runs x
# 7 s, plus smoke tests and start-up).
#
# Load client: bench/lws-echo-load.c on libwebsockets (independent of every
# server), closed loop, every echo checked for type, length and content.
# It is at 95-100 % of its core in A, B and C while no server is, so every
# server shows about its rate; LOAD_CLIENT=duplex loads with `duplex bench
# echo` instead (bench/duplex-echo-load.py: duplex's own C client, cheaper
# per echo, the same checks, no fragmented smoke run, no wss), under which
# the server's core is the limit.
# Before timing, each server passes two 1 s smoke runs per scenario with the
# scenario's parameters, whole messages and fragmented ones (-F); any error
# marks it broken for that scenario, with the reason, and it is not timed.
# Runs are interleaved (run 1 of each server, then run 2, ...). Servers are
# started afresh per scenario. CPU% columns cover the measured window only:
# the server's whole process tree and the client from /proc/PID/stat
# (utime+stime), the cores' from /proc/stat. 100% = one full core.
# Loopback only; every process started here is bounded in time and killed
# on exit. Peers missing from the machine are installed from Debian / npm
# when running as root (never by the test path).
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  SECS=${1:-2}; WARMUP=${WARMUP:-1}; RUNS=${RUNS:-1}
else
  SECS=${1:-5}; WARMUP=${WARMUP:-2}; RUNS=${RUNS:-3}
fi
CLIENT_ARGS=${CLIENT_ARGS:-}
LOAD_CLIENT=${LOAD_CLIENT:-lws}
[[ $LOAD_CLIENT == lws || $LOAD_CLIENT == duplex ]] || { echo "echo.sh: LOAD_CLIENT is lws or duplex" >&2; exit 2; }
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVERS=${SERVERS:-duplex-luajit duplex-luajit-wss duplex-lua5.4 node-ws nginx-lua lws-c}
if [[ -z ${SCENARIOS:-} && -n ${CONNS:-}${DEPTH:-}${SIZE:-} ]]; then
  SCENARIOS="custom=${CONNS:-100}:${DEPTH:-16}:${SIZE:-32}:text"
fi
SCENARIOS=${SCENARIOS:-A B C}
HOST=127.0.0.1
REF=duplex-luajit

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)

PROG=echo.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

read -r -a NAMES <<< "$SERVERS"
for n in "${NAMES[@]}"; do
  case $n in duplex-luajit|duplex-lua5.4|duplex-luajit-wss|duplex-lua5.4-wss|node-ws|nginx-lua|lws-c|uws-cpp) ;;
    *) die "unknown server '$n' (SERVERS)" ;; esac
done

# ---- scenarios -------------------------------------------------------------
declare -A SC_CONNS SC_DEPTH SC_SIZE SC_TYPE
SCN=()
for s in $SCENARIOS; do
  case $s in
    A) spec="100:16:32:text" ;;
    B) spec="1000:1:1024:text" ;;
    C) spec="4:1:65536:binary" ;;
    *=*) spec=${s#*=}; s=${s%%=*} ;;
    *) die "unknown scenario '$s' (A, B, C or NAME=CONNS:DEPTH:SIZE:text|binary)" ;;
  esac
  IFS=: read -r c d z t <<< "$spec"
  [[ $c =~ ^[0-9]+$ && $d =~ ^[0-9]+$ && $z =~ ^[0-9]+$ &&
     ( $t == text || $t == binary ) ]] || die "bad scenario spec '$spec'"
  SC_CONNS[$s]=$c SC_DEPTH[$s]=$d SC_SIZE[$s]=$z SC_TYPE[$s]=$t
  SCN+=("$s")
done

# ---- install and build what is needed ----------------------------------------
prepare_servers "${NAMES[@]}"

if ! pkg-config --exists libwebsockets 2>/dev/null; then
  apt_install libwebsockets-dev pkg-config ||
    die "libwebsockets-dev is missing (apt-get install libwebsockets-dev)"
fi
LWSFLAGS=$(pkg-config --cflags --libs libwebsockets)
CLIENT=$OUT/lws-echo-load
if [[ ! -x $CLIENT || bench/lws-echo-load.c -nt $CLIENT ]]; then
  # shellcheck disable=SC2086
  cc -O2 -Wall -Wextra -o "$CLIENT" bench/lws-echo-load.c $LWSFLAGS ||
    die "client build failed"
fi
CLIENT_CMD=("$CLIENT") CLIENT_NAME=lws-echo-load SMOKE_FRAGMENTED=1
if [[ $LOAD_CLIENT == duplex ]]; then      # duplex's own client: see bench/duplex-echo-load.py
  [[ -x build/luajit/duplex ]] || die "LOAD_CLIENT=duplex needs build/luajit/duplex (make build)"
  CLIENT_CMD=(bench/duplex-echo-load.py build/luajit/duplex) CLIENT_NAME="duplex bench" SMOKE_FRAGMENTED=0
fi

# ---- servers -------------------------------------------------------------------
# wss: a self-signed certificate for the bench (the client accepts it with -S)
TLSDIR=$OUT/tls
if [[ " $SERVERS " == *"-wss "* && ! -s $TLSDIR/cert.pem ]]; then
  mkdir -p "$TLSDIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLSDIR/key.pem" -out "$TLSDIR/cert.pem" -days 30 -subj "/CN=$HOST" \
    -addext "subjectAltName=IP:$HOST" 2> "$TLSDIR/openssl.log" || die "openssl could not make the bench certificate"
fi
TLSARGS="--tls-cert $TLSDIR/cert.pem --tls-key $TLSDIR/key.pem"
declare -A CLIENT_FLAGS=([duplex-luajit-wss]=-S [duplex-lua5.4-wss]=-S)
CMD[duplex-lua5.4]="build/lua5.4/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
CMD[duplex-luajit]="build/luajit/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED"
CMD[duplex-lua5.4-wss]="build/lua5.4/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED $TLSARGS"
CMD[duplex-luajit-wss]="build/luajit/duplex run scripts/echo.lua --host $HOST --port 0 $DUPLEX_UNLIMITED $TLSARGS"
CMD[node-ws]="node bench/ws-echo-server.js --host $HOST --port 0"
CMD[nginx-lua]="bench/nginx/serve.sh --host $HOST --port 0 --rundir $OUT/nginx-run"
CMD[lws-c]="$OUT/lws-echo-server --host $HOST --port 0"
CMD[uws-cpp]="$OUT/uws-echo-server --host $HOST --port 0"

trap stop_servers EXIT
trap 'exit 130' INT TERM

# one client run: scenario, server, warmup, window, extra flags -> sets the
# globals R_* (R_LINE empty if the client gave no result)
client_run() {
  local s=$1 n=$2 w=$3 t=$4 extra=$5 line
  local args=(-h "$HOST" -p "${PORT[$n]}" -c "${SC_CONNS[$s]}" -d "${SC_DEPTH[$s]}"
              -s "${SC_SIZE[$s]}" -w "$w" -t "$t" ${CLIENT_FLAGS[$n]:-})
  [[ ${SC_TYPE[$s]} == binary ]] && args+=(-b)
  local errlog=$OUT/client-$n-$s.stderr
  R_LINE="" R_S0=0 R_S1=0 R_K0=0 R_K1=0 R_T0=0 R_T1=0 R_C0=(0 0 0) R_C1=(0 0 0) R_B0=(0 0 0) R_B1=(0 0 0)
  local tree=()
  echo "--- $(date +%T) $s w=$w t=$t $extra $CLIENT_ARGS" >> "$errlog"
  # shellcheck disable=SC2086
  while IFS= read -r line; do
    case $line in
      WINDOW_START*)
        mapfile -t tree < <(descendants "${SPID[$n]}")
        R_S0=$(tree_cpu "${tree[@]}"); R_K0=$(tree_sys "${tree[@]}"); R_T0=$(now)
        read -r -a R_C0 <<< "$(core_stat "$CLIENT_CPU")"
        read -r -a R_B0 <<< "$(core_stat "$SERVER_CPU")"
        ;;
      RESULT*)
        R_S1=$(tree_cpu "${tree[@]}"); R_K1=$(tree_sys "${tree[@]}"); R_T1=$(now)
        read -r -a R_C1 <<< "$(core_stat "$CLIENT_CPU")"
        read -r -a R_B1 <<< "$(core_stat "$SERVER_CPU")"
        R_LINE=$line
        ;;
    esac
  done < <(timeout -s KILL $(( ${w%.*} + ${t%.*} + 25 )) taskset -c "$CLIENT_CPU" \
             "${CLIENT_CMD[@]}" "${args[@]}" $extra $CLIENT_ARGS 2>> "$errlog")
}
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $R_LINE"; }
client_reason() { # why a client run failed, from its stderr
  local f=$OUT/client-$1-$2.stderr
  { grep -v '^---\|^detail' "$f" 2>/dev/null || true; } | tail -1 | cut -c1-100
}

# ---- runs ----------------------------------------------------------------------
echo "echo.sh: scenarios ${SCN[*]}; servers ${NAMES[*]}; warm-up ${WARMUP}s, window ${SECS}s, $RUNS run(s); server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
RESULTS=$OUT/echo-results.jsonl
: > "$RESULTS"
REPORT=()

for s in "${SCN[@]}"; do
  C=${SC_CONNS[$s]} D=${SC_DEPTH[$s]} Z=${SC_SIZE[$s]} TY=${SC_TYPE[$s]}
  SHOW_MB=0; (( Z >= 4096 )) && SHOW_MB=1
  declare -A BROKEN=() RATE=() MB=() SCPU=() SSYS=() CCPU=() ERRS=() OTH0=() OTH1=() CORE0=() CORE1=()
  # fragment size for the fragmented smoke run: about three frames a message
  FRAG=$(( (Z + 2) / 3 )); (( FRAG < 8 )) && FRAG=8
  LIFE=$(( ${#NAMES[@]} * (2 * 30 + RUNS * (WARMUP + SECS + 30)) + 60 ))
  note "scenario $s: $C conns x $D in flight x $Z B $TY"
  for n in "${NAMES[@]}"; do
    if [[ -n ${BROKEN_ALL[$n]:-} ]]; then BROKEN[$n]=${BROKEN_ALL[$n]}; continue; fi
    start_server "$n" "$LIFE"
    [[ -n $WHY ]] && BROKEN[$n]=$WHY
  done
  # smoke: whole messages, then fragmented ones, 1 s each, no error allowed
  for n in "${NAMES[@]}"; do
    [[ -n ${BROKEN[$n]:-} ]] && continue
    smokes=("")
    (( SMOKE_FRAGMENTED )) && smokes+=("-F $FRAG")
    for extra in "${smokes[@]}"; do
      client_run "$s" "$n" 0 1 "$extra"
      if [[ -z $R_LINE ]]; then
        BROKEN[$n]="smoke${extra:+ $extra}: no result: $(client_reason "$n" "$s")"
      elif [[ $(get errors) != 0 || $(get msgs) == 0 ]]; then
        BROKEN[$n]="smoke${extra:+ $extra}: $(get errors) errors, $(get msgs) echoes: $(client_reason "$n" "$s")"
      fi
      [[ -n ${BROKEN[$n]:-} ]] && { note "$n broken in $s: ${BROKEN[$n]}"; break; }
    done
  done
  for r in $(seq "$RUNS"); do
    for n in "${NAMES[@]}"; do
      [[ -n ${BROKEN[$n]:-} ]] && continue
      if ! kill -0 "${SPID[$n]}" 2>/dev/null; then
        BROKEN[$n]="died before run $r (see $OUT/$n.stderr)"; continue
      fi
      client_run "$s" "$n" "$WARMUP" "$SECS" ""
      if [[ -z $R_LINE ]]; then
        RATE[$n,$r]=0 MB[$n,$r]=0 ERRS[$n,$r]=1 CCPU[$n,$r]=0 SCPU[$n,$r]=0 SSYS[$n,$r]=0
        OTH0[$n,$r]=0 OTH1[$n,$r]=0 CORE0[$n,$r]=0 CORE1[$n,$r]=0
        note "run $r $n: no result: $(client_reason "$n" "$s")"
        continue
      fi
      RATE[$n,$r]=$(get msg_per_s)
      MB[$n,$r]=$(get mb_per_s)
      ERRS[$n,$r]=$(get errors)
      CCPU[$n,$r]=$(get client_cpu)
      SCPU[$n,$r]=$(awk -v a="$R_S0" -v b="$R_S1" -v t0="$R_T0" -v t1="$R_T1" \
        -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')
      # the share of the server's CPU time spent in the kernel (system calls,
      # and the loopback TCP work they carry out)
      SSYS[$n,$r]=$(awk -v k=$(( R_K1 - R_K0 )) -v c=$(( R_S1 - R_S0 )) \
        'BEGIN { printf "%.0f", (c > 0) ? 100 * k / c : 0 }')
      # core busy %, and "other": task time on that core not charged to the
      # pinned server tree or the client (others sharing the machine). High
      # "other" means the run was disturbed.
      pct() { awk -v d="$1" -v T="$2" 'BEGIN { printf "%.0f", (T > 0) ? 100 * d / T : 0 }'; }
      CORE0[$n,$r]=$(pct $(( R_C1[0] - R_C0[0] )) $(( R_C1[2] - R_C0[2] )))
      CORE1[$n,$r]=$(pct $(( R_B1[0] - R_B0[0] )) $(( R_B1[2] - R_B0[2] )))
      ccpu_j=$(awk -v p="${CCPU[$n,$r]}" -v T=$(( R_C1[2] - R_C0[2] )) 'BEGIN { printf "%.0f", p * T / 100 }')
      OTH0[$n,$r]=$(pct $(( R_C1[1] - R_C0[1] - ccpu_j )) $(( R_C1[2] - R_C0[2] )))
      OTH1[$n,$r]=$(pct $(( R_B1[1] - R_B0[1] - R_S1 + R_S0 )) $(( R_B1[2] - R_B0[2] )))
      (( OTH0[$n,$r] < 0 )) && OTH0[$n,$r]=0
      (( OTH1[$n,$r] < 0 )) && OTH1[$n,$r]=0
      printf 'run %d %s %-14s %7s msg/s %8s MB/s  errors %s  server cpu %s%% (kernel %s%%)  client cpu %s%%  core%s busy %s%% (other %s%%)  core%s busy %s%% (other %s%%)\n' \
        "$r" "$s" "$n" "${RATE[$n,$r]}" "${MB[$n,$r]}" "${ERRS[$n,$r]}" "${SCPU[$n,$r]}" "${SSYS[$n,$r]}" "${CCPU[$n,$r]}" \
        "$SERVER_CPU" "${CORE1[$n,$r]}" "${OTH1[$n,$r]}" "$CLIENT_CPU" "${CORE0[$n,$r]}" "${OTH0[$n,$r]}" >&2
    done
  done
  stop_servers "${NAMES[@]}"

  # ---- table and JSON for this scenario ----
  declare -A MED=()
  for n in "${NAMES[@]}"; do
    [[ -n ${BROKEN[$n]:-} ]] && continue
    vals=(); for r in $(seq "$RUNS"); do vals+=("${RATE[$n,$r]:-0}"); done
    MED[$n]=$(median "${vals[@]}")
  done
  ref=${MED[$REF]:-0}
  refruns=""; for r in $(seq "$RUNS"); do refruns+="${RATE[$REF,$r]:-0} "; done
  tbl=$(
    echo
    echo "scenario $s: $C conns x $D in flight x $Z B $TY, ${SECS}s window after ${WARMUP}s warm-up, $RUNS run(s); client $CLIENT_NAME${CLIENT_ARGS:+ $CLIENT_ARGS}"
    hdr_mb=""; (( SHOW_MB )) && hdr_mb=$(printf ' | %7s' "MB/s")
    printf '%-17s | %-28s | %8s%s | %8s | %7s | %7s | %10s | %7s | %6s | %-11s\n' \
      server "runs msg/s" "median" "$hdr_mb" "vs luajit" "srv cpu" "kernel" "srv us/msg" "cli cpu" errors "core$SERVER_CPU busy/oth"
    echo "------------------+------------------------------+----------$( (( SHOW_MB )) && echo '+---------')+----------+---------+---------+------------+---------+--------+------------"
    for n in "${NAMES[@]}"; do
      if [[ -n ${BROKEN[$n]:-} ]]; then
        printf '%-17s | broken: %s\n' "$n" "${BROKEN[$n]}"
        continue
      fi
      runs="" errs=0 sc=() ks=() cc=() mb=() k1=() o1=()
      for r in $(seq "$RUNS"); do
        mark=""
        (( ${OTH0[$n,$r]:-0} > 10 || ${OTH1[$n,$r]:-0} > 10 )) && mark="*"
        runs+="${RATE[$n,$r]:-0}$mark "
        errs=$(( errs + ${ERRS[$n,$r]:-0} ))
        sc+=("${SCPU[$n,$r]:-0}"); ks+=("${SSYS[$n,$r]:-0}"); cc+=("${CCPU[$n,$r]:-0}"); mb+=("${MB[$n,$r]:-0}")
        k1+=("${CORE1[$n,$r]:-0}"); o1+=("${OTH1[$n,$r]:-0}")
      done
      ratio=$(paired_ratio "${runs//\*/}" "$refruns")
      scm=$(median "${sc[@]}")
      usm=$(awk -v c="$scm" -v m="${MED[$n]}" 'BEGIN { if (m > 0) printf "%.2f", c * 1e4 / m; else printf "n/a" }')
      col_mb=""; (( SHOW_MB )) && col_mb=$(printf ' | %7.1f' "$(median "${mb[@]}")")
      printf '%-17s | %-28s | %8.0f%s | %8s | %6.0f%% | %6.0f%% | %10s | %6.0f%% | %6d | %4.0f%%/%3.0f%%\n' \
        "$n" "$runs" "${MED[$n]}" "$col_mb" "$ratio" "$scm" "$(median "${ks[@]}")" "$usm" \
        "$(median "${cc[@]}")" "$errs" "$(median "${k1[@]}")" "$(median "${o1[@]}")"
    done
  )
  echo "$tbl" >&2   # progress; all tables go to stdout at the end
  REPORT+=("$tbl")

  json="{\"scenario\":$(json_str "$s"),\"conns\":$C,\"depth\":$D,\"size\":$Z,\"type\":\"$TY\",\"warmup_s\":$WARMUP,\"window_s\":$SECS,\"runs\":$RUNS,\"server_cpu\":$SERVER_CPU,\"client_cpu\":$CLIENT_CPU,\"ref\":\"$REF\",\"servers\":{"
  first=1
  for n in "${NAMES[@]}"; do
    (( first )) || json+=","; first=0
    if [[ -n ${BROKEN[$n]:-} ]]; then
      json+="$(json_str "$n"):{\"broken\":$(json_str "${BROKEN[$n]}")}"
      continue
    fi
    rr=() mm=() sc=() ks=() cc=() errs=0 dist=0
    for r in $(seq "$RUNS"); do
      rr+=("${RATE[$n,$r]:-0}"); mm+=("${MB[$n,$r]:-0}")
      sc+=("${SCPU[$n,$r]:-0}"); ks+=("${SSYS[$n,$r]:-0}"); cc+=("${CCPU[$n,$r]:-0}")
      errs=$(( errs + ${ERRS[$n,$r]:-0} ))
      (( ${OTH0[$n,$r]:-0} > 10 || ${OTH1[$n,$r]:-0} > 10 )) && dist=$(( dist + 1 ))
    done
    ratio=$(awk -v a="${MED[$n]}" -v b="$ref" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "null" }')
    paired=$(paired_ratio "${rr[*]}" "$refruns" %.3f | sed 's|n/a|null|')
    json+="$(json_str "$n"):{\"msg_per_s\":[$(IFS=,; echo "${rr[*]}")],\"median_msg_per_s\":${MED[$n]},\"median_mb_per_s\":$(median "${mm[@]}"),\"ratio_vs_ref\":$ratio,\"paired_ratio_vs_ref\":$paired,\"server_cpu_pct\":$(median "${sc[@]}"),\"server_kernel_pct\":$(median "${ks[@]}"),\"client_cpu_pct\":$(median "${cc[@]}"),\"errors\":$errs,\"disturbed_runs\":$dist}"
  done
  json+="}}"
  echo "$json" >> "$RESULTS"
  unset BROKEN RATE MB SCPU SSYS CCPU ERRS OTH0 OTH1 CORE0 CORE1 MED
done

# ---- all tables again, then the JSON lines ------------------------------------------
echo
echo "==== echo throughput (load average now $(cut -d' ' -f1-3 /proc/loadavg)) ===="
for t in "${REPORT[@]}"; do echo "$t"; done
echo
echo "(runs: msg/s per run, a * marks a disturbed run: more than 10% of a core's time went to processes other than"
echo " this server and client. vs luajit: the median of the run-by-run ratios to $REF's (run r of every server is one round:"
echo " the machine's drift between rounds cancels; the JSON has the ratio of medians too). srv cpu: the server's process tree (nginx: master + its one"
echo " worker), median % of one core over the window; kernel: the part of srv cpu spent in the kernel (system calls and the"
echo " loopback TCP work they do), what no change to a server's own code removes; srv us/msg: that CPU per echoed message, the fairer figure when"
echo " the client is the bottleneck (cli cpu near 100%). MB/s: payload echoed per second, one direction, 10^6 B."
echo " errors: summed over the timed runs (whole client runs). Servers marked broken failed a smoke run and were not timed."
echo " *-wss: the same duplex over wss:// (TLS 1.3, AES-GCM, a self-signed P-256 certificate), the same client with -S:"
echo " beside its ws row it gives what TLS costs; handshakes are outside the window.)"
echo
cat "$RESULTS"

#!/usr/bin/env bash
# Instructions per message of the duplex server, counted by callgrind:
# figures that hold on a busy machine, where wall-clock rates do not.
#
#   bench/instructions.sh [VM...]      (VMs: lua5.4 luajit; default both)
#
# For each scenario the server (bench/count_echo.lua under callgrind) is
# run twice, to LOW and HIGH messages, and loaded by `duplex bench echo`
# until it exits; (Ir(HIGH) - Ir(LOW)) / (messages(HIGH) - messages(LOW))
# cancels start-up and handshakes. Every instruction of the server process
# counts (libev, Lua VM, libc, the core), none of the kernel's. The split
# by object (the duplex binary, the Lua library, libc, ...) follows.
#
# Scenarios (SCENARIOS, default "A B C D"; E, H and P on request):
#   A  100 connections x 16 in flight x 32 B text
#   B  1000 connections x 1 in flight x 1 KiB text
#   C  4 connections x 1 in flight x 64 KiB binary
#   D  4 connections x 1 in flight x 1 MiB binary (spread over reads)
#   E  100 connections x 16 in flight x 1 KiB text (many messages a read:
#      what B costs when they come in batches)
#   H  handshakes: `duplex bench connect` opens and closes connections
#      (bench/count_connect.lua counts closes): instructions per connection
#   P  publish: `duplex bench broadcast`, 100 subscribers x 8 in flight x
#      32 B text (bench/count_broadcast.lua counts publications):
#      instructions per publication, i.e. for 100 deliveries
# Environment: KEEP=1 keeps the profiles (bench/out/callgrind.*); BUILD
# (default build) the directory holding <vm>/duplex; APP the app run;
# COUNTS_<scenario>="LOW HIGH" other counts (a longer window spans more
# collector cycles: COUNTS_A="100000 500000").
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

VMS=${*:-lua5.4 luajit}
SCENARIOS=${SCENARIOS:-A B C D}
BUILD=${BUILD:-build}
OUT=bench/out
mkdir -p "$OUT"

flags() {
  case $1 in
    A) echo "--connections 100 --depth 16 --size 32" ;;
    B) echo "--connections 1000 --depth 1 --size 1024" ;;
    C) echo "--connections 4 --depth 1 --size 65536 --binary" ;;
    D) echo "--connections 4 --depth 1 --size 1048576 --binary" ;;
    E) echo "--connections 100 --depth 16 --size 1024" ;;
    H) echo "" ;;
    P) echo "--connections 100 --depth 8 --size 32" ;;
  esac
}
counts() {     # LOW HIGH
  local own=COUNTS_$1
  if [[ -n ${!own:-} ]]; then echo "${!own}"; return; fi
  case $1 in
    A) echo "20000 100000" ;;
    B) echo "10000 50000" ;;
    C) echo "500 2500" ;;
    D) echo "40 200" ;;
    E) echo "10000 50000" ;;
    H) echo "1000 6000" ;;   # Lua 5.4's collector runs whole cycles: fewer connections
                             # made a cycle more or less between the two runs a +-300 swing
    P) echo "2000 10000" ;;
  esac
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run VM SCENARIO COUNT -> "Ir messages profile"
run() {
  local vm=$1 sc=$2 n=$3 port prof log pid
  port=$(free_port)
  prof=$OUT/callgrind.$vm.$sc.$n
  log=$OUT/callgrind.$vm.$sc.$n.log
  local app=${APP:-bench/count_echo.lua}
  [[ $sc == H ]] && app=bench/count_connect.lua
  [[ $sc == P ]] && app=bench/count_broadcast.lua
  DUPLEX_COUNT=$n timeout 600 valgrind --tool=callgrind --callgrind-out-file="$prof" \
    "$BUILD/$vm/duplex" run "$app" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.2
  done
  if [[ $sc == H ]]; then
    timeout 600 "$BUILD/$vm/duplex" bench connect --url "ws://127.0.0.1:$port/" --connections "$n" \
      --timeout 120 --json >/dev/null 2>&1 || true
  elif [[ $sc == P ]]; then
    # shellcheck disable=SC2046
    timeout 600 "$BUILD/$vm/duplex" bench broadcast --url "ws://127.0.0.1:$port/" $(flags "$sc") \
      --warmup 0 --seconds 600 --timeout 60 --json >/dev/null 2>&1 || true
  else
    # shellcheck disable=SC2046
    timeout 600 "$BUILD/$vm/duplex" bench echo --url "ws://127.0.0.1:$port/" $(flags "$sc") \
      --warmup 0 --seconds 600 --timeout 60 --json >/dev/null 2>&1 || true
  fi
  wait "$pid" || true
  local ir msgs
  ir=$(sed -n 's/^summary: //p' "$prof")
  msgs=$(sed -n 's/^messages //p; s/^connections //p' "$log")
  echo "${ir:-0} ${msgs:-0} $prof"     # 0: the server did not run (see its log)
}

# Instructions by object file, for the profile pair: "object Ir/message" lines.
split() {
  local lo=$1 hi=$2 dm=$3
  for p in "$lo" "$hi"; do
    callgrind_annotate --auto=no --threshold=100 "$p" 2>/dev/null |
      awk '/^ *[0-9,]+ .*\[/ { n = $1; gsub(",", "", n); o = $NF; gsub(/[\[\]]/, "", o);
                               sub(".*/", "", o); s[o] += n }
           END { for (o in s) print o, s[o] }'
  done | awk -v dm="$dm" '{ if ($1 in a) d[$1] = $2 - a[$1]; else a[$1] = $2 }
           END { for (o in d) if (d[o] / dm >= 5) printf "    %-28s %8.0f\n", o, d[o] / dm }' |
    sort -k2 -nr
}

failed=0
for vm in $VMS; do
  [[ -x $BUILD/$vm/duplex ]] || { echo "instructions.sh: $BUILD/$vm/duplex missing (make build)" >&2; exit 2; }
  for sc in $SCENARIOS; do
    read -r lo hi < <(counts "$sc")
    read -r ir1 m1 p1 < <(run "$vm" "$sc" "$lo")
    read -r ir2 m2 p2 < <(run "$vm" "$sc" "$hi")
    if ! (( m1 > 0 && m2 > m1 )); then
      echo "$vm $sc: run failed (see $OUT/callgrind.$vm.$sc.*.log)" >&2
      failed=1
      continue
    fi
    dm=$((m2 - m1))
    unit=message
    [[ $sc == H ]] && unit=connection
    [[ $sc == P ]] && unit=publication
    printf '%-7s %s  %-45s %8.0f instructions/%s  (%d %ss)\n' "$vm" "$sc" "$(flags "$sc")" \
      "$(awk -v a="$ir1" -v b="$ir2" -v d="$dm" 'BEGIN { print (b - a) / d }')" "$unit" "$dm" "$unit"
    split "$p1" "$p2" "$dm"
    [[ ${KEEP:-0} == 1 ]] || rm -f "$p1" "$p2" "$OUT"/callgrind."$vm"."$sc".*.log
  done
done
exit "$failed"

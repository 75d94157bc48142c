# shellcheck shell=bash disable=SC2034,SC2120
# Shared by bench/echo.sh and bench/scenarios.sh (sourced, not run):
# preparing the peer servers, starting them pinned and stopping them, and
# the small measuring helpers.
#
# The sourcing script sets, before calling these:
#   PROG        its name, for messages
#   ROOT, OUT   repo root (the current directory) and bench/out
#   HOST        loopback address the servers listen on
#   SERVER_CPU  CPU the servers are pinned to (taskset -c)
#   CMD[name]   the command line that starts server `name`; its first stdout
#               line must contain ws://HOST:PORT
# Globals kept here: PID[name] (the `timeout` wrapping the server),
# SPID[name] (the server itself, or its launcher: nginx's serve.sh),
# PORT[name], BROKEN_ALL[name] (why a server cannot run at all), WHY.

# duplex's limits meant for real clients (connections per address, messages
# a second) off: the load comes from one address, faster than any client.
DUPLEX_UNLIMITED="--max-connections 0 --max-connections-per-ip 0 --max-message-rate 0"

die() { echo "$PROG: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

declare -A CMD PID SPID PORT BROKEN_ALL

apt_install() { # packages...: install when root; 0 on success
  [[ $(id -u) == 0 ]] || return 1
  note "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >&2 ||
    { timeout 600 apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >&2; }
}

nginx_ok() {
  command -v nginx >/dev/null && command -v python3 >/dev/null &&
    [[ -f /usr/share/nginx/modules/ngx_http_lua_module.so &&
       -f /usr/share/nginx/modules/ndk_http_module.so ]] &&
    [[ -f /usr/share/lua/5.1/nginx/websocket/server.lua ||
       -f /usr/share/lua/5.1/resty/websocket/server.lua ]]
}

# uws-cpp: bench/uws-echo-server.cpp on uWebSockets, which no package
# carries: UWS_DIR names a uWebSockets source tree (relative paths are taken
# from the repo root), its uSockets in UWS_DIR/uSockets (the submodule) or
# in UWS_SOCKETS_DIR. Built here into OUT, nothing written into those trees:
# uSockets' C files the way its Makefile does without TLS (-O3 -flto
# -DLIBUS_NO_SSL, epoll), the server as uWS's examples are but for
# -march=native (-O3 -flto, C++20), without zlib (compression is off).
# Rebuilt when the server's source is newer or the trees named differ.
prepare_uws() {
  local us=${UWS_SOCKETS_DIR:-${UWS_DIR:+$UWS_DIR/uSockets}}
  if [[ -z ${UWS_DIR:-} ]]; then
    BROKEN_ALL[uws-cpp]="set UWS_DIR to a uWebSockets checkout"; return
  fi
  if [[ ! -f $UWS_DIR/src/App.h ]]; then
    BROKEN_ALL[uws-cpp]="UWS_DIR ($UWS_DIR) has no src/App.h"; return
  fi
  if [[ ! -f $us/src/libusockets.h ]]; then
    BROKEN_ALL[uws-cpp]="no uSockets in $us (its submodule, or set UWS_SOCKETS_DIR)"; return
  fi
  local uwsdir usdir srcs
  uwsdir=$(cd "$UWS_DIR" && pwd) usdir=$(cd "$us" && pwd)
  UWSSRV=$OUT/uws-echo-server
  srcs="$uwsdir $usdir $(git -C "$uwsdir" rev-parse HEAD 2>/dev/null || true)"
  if [[ -x $UWSSRV && ! bench/uws-echo-server.cpp -nt $UWSSRV &&
        $(cat "$OUT/uws-echo-server.src" 2>/dev/null) == "$srcs" ]]; then
    return
  fi
  note "building uws-cpp (uSockets + bench/uws-echo-server.cpp)"
  local obj=$OUT/uws-obj
  rm -rf "$obj" && mkdir -p "$obj"
  if (cd "$obj" && cc -O3 -flto=auto -DLIBUS_NO_SSL -std=c11 -I"$usdir/src" -c \
        "$usdir"/src/*.c "$usdir"/src/eventing/*.c "$usdir"/src/crypto/*.c) \
        > "$OUT/uws-cpp.build" 2>&1 &&
     g++ -O3 -flto=auto -std=c++20 -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
        -I"$uwsdir/src" -I"$usdir/src" -o "$UWSSRV" bench/uws-echo-server.cpp \
        "$obj"/*.o >> "$OUT/uws-cpp.build" 2>&1; then
    echo "$srcs" > "$OUT/uws-echo-server.src"
  else
    rm -f "$UWSSRV"
    BROKEN_ALL[uws-cpp]="build failed (see $OUT/uws-cpp.build)"
  fi
}

# Makes what the named servers need (duplex built, the lws and uWS servers
# compiled, `ws` resolvable, nginx + lua installed); a server that cannot be
# had gets its reason in BROKEN_ALL. Peers missing from the machine are installed
# from Debian / npm when running as root.
prepare_servers() { # names...
  local want=" $* "
  if [[ $want == *" duplex-"* ]] &&
     [[ ! -x build/lua5.4/duplex || ! -x build/luajit/duplex ]]; then
    note "building duplex (make build)"
    timeout 900 make build >&2 || die "make build failed"
  fi
  if [[ $want == *" lws-c "* ]]; then
    if ! pkg-config --exists libwebsockets 2>/dev/null; then
      apt_install libwebsockets-dev pkg-config || true
    fi
    if ! pkg-config --exists libwebsockets 2>/dev/null; then
      BROKEN_ALL[lws-c]="libwebsockets-dev is missing"
    else
      LWSSRV=$OUT/lws-echo-server
      if [[ ! -x $LWSSRV || bench/lws-echo-server.c -nt $LWSSRV ]]; then
        # shellcheck disable=SC2046
        cc -O2 -Wall -Wextra -o "$LWSSRV" bench/lws-echo-server.c \
          $(pkg-config --cflags --libs libwebsockets) 2> "$OUT/lws-c.build" ||
          BROKEN_ALL[lws-c]="build failed (see $OUT/lws-c.build)"
      fi
    fi
  fi
  if [[ $want == *" uws-cpp "* ]]; then
    prepare_uws
  fi
  if [[ $want == *" node-ws "* ]] && ! node -e "require.resolve('ws')" >/dev/null 2>&1; then
    local wsdir=$OUT/ws-deps
    if [[ ! -d $wsdir/node_modules/ws ]]; then
      note "installing ws into $wsdir (package.json untouched)"
      mkdir -p "$wsdir"
      (cd "$wsdir" && timeout 300 npm install --no-save --silent ws >&2) ||
        BROKEN_ALL[node-ws]="npm install ws failed"
    fi
    export NODE_PATH=$wsdir/node_modules${NODE_PATH:+:$NODE_PATH}
  fi
  if [[ $want == *" nginx-lua "* ]] && ! nginx_ok; then
    # nginx-extras carries libnginx-mod-http-lua; lua-nginx-websocket is
    # lua-resty-websocket (as nginx.websocket.*) and depends on nginx-extras.
    apt_install nginx-extras libnginx-mod-http-lua lua-nginx-websocket python3 || true
    nginx_ok || BROKEN_ALL[nginx-lua]="nginx-extras + libnginx-mod-http-lua + lua-nginx-websocket not installable"
  fi
  return 0
}

descendants() { # pid: it and all its descendants
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null); do descendants "$c"; done
}

# Stops the named servers (default: every one started) and their process
# trees: TERM, up to 3 s, then KILL.
stop_servers() { # [names...]
  local n p pids=() names=("$@")
  (( ${#names[@]} )) || names=("${!PID[@]}")
  for n in "${names[@]}"; do
    if [[ -n ${SPID[$n]:-} ]]; then
      mapfile -t -O "${#pids[@]}" pids < <(descendants "${SPID[$n]}")
    fi
    [[ -n ${PID[$n]:-} ]] && pids+=("${PID[$n]}")
  done
  if (( ${#pids[@]} )); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 30); do
      local alive=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      (( alive )) || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  for n in "${names[@]}"; do
    if [[ -n ${PID[$n]:-} ]]; then wait "${PID[$n]}" 2>/dev/null || true; fi
    PID[$n]="" SPID[$n]="" PORT[$n]=""
  done
}

# Starts CMD[name] pinned to SERVER_CPU, bounded by `timeout LIFETIME`;
# stdout/stderr go to OUT/LOG.stdout / .stderr (LOG defaults to the name).
start_server() { # name lifetime [log]: sets PID SPID PORT; WHY if it failed
  local n=$1 life=$2 log=$OUT/${3:-$1}
  WHY=""
  : > "$log.stdout"
  # shellcheck disable=SC2086
  timeout -s TERM "$life" taskset -c "$SERVER_CPU" ${CMD[$n]} \
    > "$log.stdout" 2> "$log.stderr" &
  PID[$n]=$!
  for _ in $(seq 100); do
    grep -qE "wss?://$HOST:" "$log.stdout" 2>/dev/null && break
    kill -0 "${PID[$n]}" 2>/dev/null || break
    sleep 0.1
  done
  PORT[$n]=$(grep -m1 -E "wss?://$HOST:" "$log.stdout" | sed -n "s|.*wss*://$HOST:\([0-9][0-9]*\).*|\1|p" || true)
  # `timeout` is the direct child; the server (or its launcher) is its child
  SPID[$n]=$(pgrep -P "${PID[$n]}" | head -1 || true)
  if [[ -z ${PORT[$n]} || -z ${SPID[$n]} ]]; then
    WHY="did not start: $(tail -1 "$log.stderr" 2>/dev/null | cut -c1-120 || true)"
  fi
}

tree_jiffies() { # awk-expr pids...: that expression of /proc/PID/stat summed
  local expr=$1 t=0 p v; shift
  for p in "$@"; do
    v=$(awk "{print $expr}" "/proc/$p/stat" 2>/dev/null) || v=0
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
tree_cpu() { tree_jiffies '$14 + $15' "$@"; } # pids...: utime+stime jiffies summed
tree_sys() { tree_jiffies '$15' "$@"; }       # pids...: stime (in the kernel for them)
core_stat() { # jiffies of core $1: "busy tasks total" (busy: all but idle and
  # iowait, so softirq and steal too; tasks: user+nice+system, i.e. time some
  # process was charged for)
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i;
    print t - $5 - $6, $2 + $3 + $4, t }' /proc/stat
}
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
  END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2];
        else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# paired_ratio "A1 A2 ..." "B1 B2 ..." [FORMAT]: the median of the run-by-run
# ratios A[r] / B[r] (runs where both ran). Run r of every server is one
# round, close in time, so the machine's drift from round to round (which
# moved whole rounds by a third on the VMs this was built on) cancels;
# the ratio of the medians does not cancel it. "n/a" when no run pairs.
paired_ratio() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.2fx}" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); k = 0
    for (i = 1; i <= n; i++) if (x[i] + 0 > 0 && y[i] + 0 > 0) r[++k] = x[i] / y[i]
    if (k == 0) { printf "n/a"; exit }
    for (i = 2; i <= k; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
    printf f, (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2 }'
}
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
  END { printf "%s-%s", lo, hi }'; }
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\t'/ }"; }

# duplex: build, test, run. `make help` lists the targets.
#
# Two VMs are built and tested side by side: Lua 5.4 (build/lua5.4) and
# LuaJIT (build/luajit); `make test-asan` adds AddressSanitizer +
# UndefinedBehaviorSanitizer builds of both (build/asan-*).

VERSION := 0.1.0
PREFIX ?= /usr/local
PORT ?= 8080
JOBS ?= 2
SHELL := /bin/bash

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FLAVOUR = $(MAKE) --no-print-directory -j$(JOBS) -f mk/flavour.mk VERSION=$(VERSION) PREFIX=$(PREFIX)

# Debian packages the build, the tests and `make run` need.
DEB_PACKAGES := gcc make pkg-config libev-dev libssl-dev zlib1g-dev libhiredis-dev redis-server \
	lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-busted lua-socket lua-sec lua-zlib lua-cjson \
	luarocks lua5.1 liblua5.1-0-dev python3 python3-websockets openssl prometheus
# Node and npm may come from elsewhere than Debian (whose npm conflicts with
# other nodejs builds): installed from Debian only when the commands are missing.
NODE_PACKAGES := nodejs npm
# The browser tests drive Debian's Chromium (never a downloaded browser);
# fonts so that screenshots show text.
BROWSER_PACKAGES := chromium fonts-liberation fonts-dejavu-core

.PHONY: help deps deps-browser build build-lua5.4 build-luajit build-asan unit test test-unit \
	test-lua5.4 test-luajit test-browser test-asan test-unit-asan test-bus test-bus-asan bench-bus test-broker test-broker-asan bench bench-scaleout bench-instructions bench-sse run clean install \
	rock rock-install

help:
	@echo "make deps       install what is missing (Debian packages, node modules)"
	@echo "make build      build duplex for Lua 5.4 and LuaJIT"
	@echo "make test       unit tests and specs on both VMs, then the browser tests"
	@echo "make test-browser  the demo pages in headless Chromium (screenshots: $(BROWSER_OUTPUT))"
	@echo "make test-asan  the same under AddressSanitizer + UBSan"
	@echo "make run        serve scripts/chat.lua on port $(PORT)"
	@echo "make bench      echo scenarios: duplex (ws and wss) beside Node ws, nginx+lua, libwebsockets"
	@echo "make bench-scaleout  workers, Redis between nodes, memory with history and presence"
	@echo "make bench-instructions  instructions per echoed message under callgrind"
	@echo "make bench-sse  server CPU per message of an SSE client against a WebSocket client"
	@echo "make bench-bus  the in-box bus: worker -> hub -> worker beside a direct socketpair"
	@echo "make fuzz       libFuzzer on the protocol layer, FUZZ_SECONDS per target"
	@echo "make install    install the command and modules under PREFIX ($(PREFIX))"
	@echo "(luarocks make  builds and installs the rock: see README.md, Installing)"

# Quick when everything is present: asks dpkg, installs only what is missing.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing $(NODE_PACKAGES)"; \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@if [ ! -d node_modules/ws ] || [ ! -d node_modules/playwright-core ] \
		|| [ package-lock.json -nt node_modules/.package-lock.json ]; then \
		npm ci --no-audit --no-fund --loglevel=error; fi

# Chromium for the browser tests: only test-browser (and so test) needs it.
deps-browser:
	@missing=$$(for p in $(BROWSER_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

build: build-lua5.4 build-luajit

build-lua5.4:
	@$(FLAVOUR) OUT=build/lua5.4 LUA_PKG=lua5.4 LUA_DIR=$(PREFIX)/share/lua/5.4

build-luajit:
	@$(FLAVOUR) OUT=build/luajit LUA_PKG=luajit LUA_DIR=$(PREFIX)/share/lua/5.1

build-asan:
	@$(FLAVOUR) OUT=build/asan-lua5.4 LUA_PKG=lua5.4 OPT=-O1 LTO= SAN="$(SAN_FLAGS)"
	@$(FLAVOUR) OUT=build/asan-luajit LUA_PKG=luajit OPT=-O1 LTO= SAN="$(SAN_FLAGS)"

# ---- tests ----

UNIT_SRC := $(wildcard test/unit/test_*.c)
PROTO_SRC := $(wildcard core/protocol/*.c)
# The unit tests' code: the protocol, and the output queue (libev's only user here).
UNIT_LIB_SRC := $(PROTO_SRC) core/transport/queue.c
UNIT_LIB_DEPS := $(UNIT_LIB_SRC) $(wildcard core/protocol/*.h test/unit/*.h) core/transport/queue.h
UNIT_CFLAGS := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Werror -Wshadow -Icore -Icore/protocol

build/unit/%: test/unit/%.c $(UNIT_LIB_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	@$(CC) $(UNIT_CFLAGS) -O2 $< $(UNIT_LIB_SRC) -lcrypto -lz -lev -o $@

build/unit-asan/%: test/unit/%.c $(UNIT_LIB_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	@$(CC) $(UNIT_CFLAGS) -O1 $(SAN_FLAGS) $< $(UNIT_LIB_SRC) -lcrypto -lz -lev -o $@

test-unit: $(patsubst test/unit/%.c,build/unit/%,$(UNIT_SRC))
	@for t in $^; do $$t || exit 1; done

test-unit-asan: $(patsubst test/unit/%.c,build/unit-asan/%,$(UNIT_SRC))
	@for t in $^; do $$t || exit 1; done

# The broker's C tests (core/broker over real sockets): test-bus, the
# in-box bus (wire, bus, hub over the memory engine) in one process over
# socketpairs; test-broker, the Redis engine against a redis-server the
# test starts itself (free port, temporary directory). bench-bus measures
# the bus's cost.
BROKER_SRC := $(wildcard core/broker/*.c)
BROKER_DEPS := $(BROKER_SRC) $(wildcard core/broker/*.h test/unit/unit.h)

build/broker/%: test/broker/%.c $(BROKER_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	@$(CC) $(UNIT_CFLAGS) -O2 $< $(BROKER_SRC) -lev -lhiredis -o $@

build/broker-asan/%: test/broker/%.c $(BROKER_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	@$(CC) $(UNIT_CFLAGS) -O1 $(SAN_FLAGS) $< $(BROKER_SRC) -lev -lhiredis -o $@

test-bus: build/broker/test_bus
	@build/broker/test_bus

test-bus-asan: build/broker-asan/test_bus
	@build/broker-asan/test_bus

test-broker: build/broker/test_redis
	@build/broker/test_redis

test-broker-asan: build/broker-asan/test_redis
	@build/broker-asan/test_redis

bench-bus: build/broker/bench_bus
	@build/broker/bench_bus $(BENCH_BUS_COUNT)

# busted runs in the Lua it tests; specs start $(DUPLEX_BIN) on port 0.
BUSTED = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' busted -o utfTerminal

test-lua5.4: build-lua5.4
	DUPLEX_BIN=build/lua5.4/duplex LUA_CPATH='build/lua5.4/lib/?.so;;' $(BUSTED) --lua=lua5.4 spec

test-luajit: build-luajit
	DUPLEX_BIN=build/luajit/duplex LUA_CPATH='build/luajit/lib/?.so;;' $(BUSTED) --lua=luajit spec

# The demo pages (scripts/*/index.html) in headless Chromium, driven by
# playwright-core under node's test runner, one test file at a time; each
# test starts its own server. Screenshots of every page land in
# $(BROWSER_OUTPUT) (made by the tests; test-asan's in $(BROWSER_OUTPUT)-asan).
BROWSER_OUTPUT := build/test-output/browser
BROWSER_TESTS := $(wildcard spec/browser/*.test.js)

BROWSER_RUN = node --test --test-concurrency=1 --test-reporter=spec $(BROWSER_TESTS)

test-browser: deps deps-browser build-lua5.4
	DUPLEX_BIN=build/lua5.4/duplex $(BROWSER_RUN)

test: deps deps-browser
	@$(MAKE) --no-print-directory test-unit test-bus test-broker fuzz-replay test-lua5.4 test-luajit test-browser

# The specs run the sanitized `duplex` as a child (leaks are checked when it
# exits); the in-process specs load the sanitized module into busted's own
# Lua, which needs the ASan runtime preloaded (and no leak check of busted).
ASAN_PRELOAD = LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 DUPLEX_ASAN=1

test-asan: deps deps-browser build-asan
	@$(MAKE) --no-print-directory test-unit-asan test-bus-asan test-broker-asan
	DUPLEX_BIN=build/asan-lua5.4/duplex DUPLEX_ASAN=1 $(BUSTED) --lua=lua5.4 --exclude-pattern=^inprocess_ spec
	DUPLEX_BIN=build/asan-luajit/duplex DUPLEX_ASAN=1 $(BUSTED) --lua=luajit --exclude-pattern=^inprocess_ spec
	$(ASAN_PRELOAD) LUA_CPATH='build/asan-lua5.4/lib/?.so;;' $(BUSTED) --lua=lua5.4 --pattern=^inprocess_ spec
	$(ASAN_PRELOAD) LUA_CPATH='build/asan-luajit/lib/?.so;;' $(BUSTED) --lua=luajit --pattern=^inprocess_ spec
	DUPLEX_BIN=build/asan-lua5.4/duplex BROWSER_OUTPUT=$(BROWSER_OUTPUT)-asan $(BROWSER_RUN)

# ---- fuzzing: make fuzz (FUZZ_SECONDS per target, default 180) ----

include fuzz/fuzz.mk

# libFuzzer comes with Debian's clang; only `make fuzz` needs it.
fuzz: fuzz-deps
fuzz-deps:
	@command -v $(FUZZ_CLANG) >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q clang; }

# ---- benchmarks (not part of test: figures, not pass/fail) ----

# Echo scenarios of duplex (Lua 5.4, LuaJIT, and LuaJIT over wss://) beside
# Node ws, nginx with lua-resty-websocket and libwebsockets, measured by an
# independent libwebsockets client (bench/echo.sh [SECONDS]); then broadcast and connect
# scenarios measured with duplex bench (bench/scenarios.sh); then the
# scale-out figures (bench/scaleout.sh): broadcast through one process and
# through --workers 2, across two nodes joined by a redis-server of its
# own, and the memory of idle connections with history and presence.
bench: deps build
	bench/echo.sh $(BENCH_SECONDS)
	bench/scenarios.sh
	bench/scaleout.sh

bench-scaleout: deps build
	bench/scaleout.sh

# Instructions per echoed message under callgrind (bench/instructions.sh):
# the figure that holds on a busy machine. valgrind is installed if missing.
bench-instructions: deps build
	@command -v valgrind >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q valgrind; }
	bench/instructions.sh

# The fallback transport's cost (bench/sse.sh [VM...]): server instructions
# (callgrind) and CPU time (/proc) per message of a Server-Sent Events
# client beside a WebSocket client, down (publications to 100 subscribers)
# and up (messages sent, one at a time and 16 to a POST).
bench-sse: deps build
	@command -v valgrind >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q valgrind; }
	bench/sse.sh

# ---- run, install ----

# The Lua layer: every .lua file under lua/duplex/, found, not listed, so a
# new module ships with `make install` and the rock alike, and the browser
# client duplex.js beside them (every app serves it at /duplex.js and
# finds it next to its own module).
LUA_MODULES := $(shell cd lua && find duplex \( -name '*.lua' -o -name '*.js' \) | LC_ALL=C sort)

# $(call install_lua,DIR): the Lua layer into DIR (DIR/duplex/...).
install_lua = for f in $(LUA_MODULES); do install -D -m 644 lua/$$f $(1)/$$f || exit 1; done

run: deps build-lua5.4
	build/lua5.4/duplex run scripts/chat.lua --port $(PORT)

install: build-lua5.4
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4/duplex
	install -m 755 build/lua5.4/duplex $(DESTDIR)$(PREFIX)/bin/duplex
	@$(call install_lua,$(DESTDIR)$(PREFIX)/share/lua/5.4)
	install -m 755 build/lua5.4/lib/duplex/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/duplex/core.so

# ---- LuaRocks: `luarocks make` runs these two (duplex-scm-1.rockspec) ----
#
# The rock is built here, from the sources `make build` compiles (mk/flavour.mk
# finds them), so the two cannot differ. LuaRocks passes its Lua's headers
# (LUA_INCDIR), its CFLAGS and LIBFLAG, the external libraries' directories,
# and where the rock's files go (INST_LIBDIR, INST_LUADIR, INST_BINDIR).
# The module links no Lua library: it takes Lua's symbols from the VM that
# loads it. No -Werror here: a user's newer compiler must not refuse to
# install over a warning (`make build` keeps it). One build directory per
# Lua headers, so rocks for two Luas never share objects.
ROCK_OUT = build/rock/$(notdir $(patsubst %/,%,$(LUA_INCDIR)))

rock:
	@test -n "$(LUA_INCDIR)" || { echo "make rock: LUA_INCDIR (the Lua headers) is not set; run luarocks make"; exit 2; }
	@$(FLAVOUR) OUT=$(ROCK_OUT) LUA_CFLAGS=-I$(LUA_INCDIR) LUA_LIBS= WERROR= OPT= LTO= \
		CFLAGS="$(CFLAGS) $(DEP_CFLAGS)" LDFLAGS="$(LDFLAGS) $(DEP_LDFLAGS)" \
		$(ROCK_OUT)/lib/duplex/core.so

rock-install:
	@test -n "$(INST_LIBDIR)" -a -n "$(INST_LUADIR)" -a -n "$(INST_BINDIR)" \
		|| { echo "make rock-install: INST_LIBDIR, INST_LUADIR and INST_BINDIR are LuaRocks'; run luarocks make"; exit 2; }
	install -D -m 755 $(ROCK_OUT)/lib/duplex/core.so $(INST_LIBDIR)/duplex/core.so
	@$(call install_lua,$(INST_LUADIR))
	install -D -m 755 bin/duplex $(INST_BINDIR)/duplex

clean:
	rm -rf build

# Builds one flavour of duplex into $(OUT): the `duplex` command and the
# duplex.core Lua module, for one Lua VM and one set of compiler flags.
# Called by the top Makefile: make -f mk/flavour.mk OUT=... LUA_PKG=... [SAN=...]
# (`make rock`, for LuaRocks, gives LUA_CFLAGS itself and builds only the
# module, with LuaRocks' CFLAGS and LIBFLAG and without -Werror.)

CC ?= cc
OPT ?= -O2
# Link-time optimization: the core's layers are files of their own, and a
# message crosses them (reader, binding, writer) in calls the compiler can
# inline only when it sees them together (bench/instructions.sh: A 927 ->
# 852 instructions a message on LuaJIT). Off for the sanitizer builds and
# the rock (LTO= ).
LTO ?= -flto=auto
SAN ?=
LUA_PKG ?= lua5.4
VERSION ?= 0.1.0
PREFIX ?= /usr/local
LUA_DIR ?= $(PREFIX)/share/lua/5.4
WERROR ?= -Werror
LIBFLAG ?= -shared

LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PKG))
LUA_LIBS := $(shell pkg-config --libs $(LUA_PKG))

WARN := -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -fPIC -g $(OPT) $(LTO) $(SAN) $(WARN) -Icore \
	-DDX_VERSION='"$(VERSION)"' -DDX_LUA_DIR='"$(LUA_DIR)"' $(CFLAGS)
LIBS := -lev -lhiredis -lssl -lcrypto -lz

PROTOCOL := $(wildcard core/protocol/*.c)
TRANSPORT := $(wildcard core/transport/*.c)
CLIENT := $(wildcard core/client/*.c)
BROKER := $(wildcard core/broker/*.c)
BINDING := $(wildcard core/binding/*.c)
BENCH := $(wildcard core/bench/*.c)
CORE_OBJ := $(patsubst core/%.c,$(OUT)/obj/%.o,$(PROTOCOL) $(TRANSPORT) $(CLIENT) $(BROKER) $(BENCH) $(BINDING))
HEADERS := $(wildcard core/*/*.h)

all: $(OUT)/duplex $(OUT)/lib/duplex/core.so

$(OUT)/obj/%.o: core/%.c $(HEADERS) mk/flavour.mk
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	@$(CC) $(CFLAGS_ALL) $(LUA_CFLAGS) -c $< -o $@

$(OUT)/duplex: $(CORE_OBJ) $(OUT)/obj/cli/main.o $(OUT)/obj/cli/alloc.o
	@echo "  LINK  $@"
	@$(CC) $(OPT) $(LTO) $(SAN) $(LDFLAGS) -o $@ $^ $(LUA_LIBS) $(LIBS) -lm -ldl

$(OUT)/lib/duplex/core.so: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(OPT) $(LTO) $(SAN) $(LIBFLAG) $(LDFLAGS) -o $@ $^ $(LIBS)

.PHONY: all

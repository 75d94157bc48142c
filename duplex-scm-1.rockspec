-- LuaRocks build of duplex: the module duplex.core, the Lua layer
-- (lua/duplex/) and the `duplex` command (bin/duplex, a launcher run by
-- the rock's Lua). The project Makefile builds and installs them
-- (`make rock`, `make rock-install`) from the sources and files it finds,
-- so the rock cannot fall behind the tree: there is no list here to keep.
rockspec_format = "3.0"
package = "duplex"
version = "scm-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "WebSocket server with a libev C core and Lua handlers",
   detailed = [[
duplex serves WebSocket apps written in Lua: a C core on libev does
sockets, TLS, the HTTP upgrade, RFC 6455 framing and compression, and
calls your handlers (open, message, close, pong_timeout, upgrade).]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   LIBEV = { header = "ev.h", library = "ev" },
   OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
   ZLIB = { header = "zlib.h", library = "z" },
   HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}
build = {
   type = "make",
   build_target = "rock",
   install_target = "rock-install",
   -- given to both passes: the build directory is named after LUA_INCDIR
   variables = {
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
      DEP_CFLAGS = "-I$(LIBEV_INCDIR) -I$(OPENSSL_INCDIR) -I$(ZLIB_INCDIR) -I$(HIREDIS_INCDIR)",
      DEP_LDFLAGS = "-L$(LIBEV_LIBDIR) -L$(OPENSSL_LIBDIR) -L$(ZLIB_LIBDIR) -L$(HIREDIS_LIBDIR)",
   },
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
   },
}
test = {
   type = "command",
   command = "make test",
}

-- LuaRocks build of the same sources the Makefile builds (core/cli/main.c
-- aside: the rock installs bin/duplex, a launcher run by the rock's Lua).
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
sockets, the HTTP upgrade and RFC 6455 framing, and calls your handlers
(open, message, close, pong_timeout, upgrade).]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   LIBEV = { header = "ev.h", library = "ev" },
   OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
   type = "builtin",
   modules = {
      ["duplex.core"] = {
         sources = {
        "core/bench/broadcast.c",
        "core/bench/echo.c",
        "core/bench/hist.c",
        "core/bench/payload.c",
        "core/bench/proc.c",
        "core/bench/run.c",
        "core/binding/call.c",
        "core/binding/compat.c",
        "core/binding/lconn.c",
        "core/binding/lbench.c",
        "core/binding/lclient.c",
        "core/binding/lserver.c",
        "core/binding/ltls.c",
        "core/binding/ltimer.c",
        "core/binding/module.c",
        "core/protocol/client_handshake.c",
        "core/protocol/frame.c",
        "core/protocol/handshake.c",
        "core/protocol/http.c",
        "core/protocol/message.c",
        "core/protocol/pmd.c",
        "core/protocol/utf8.c",
        "core/transport/addr.c",
        "core/transport/client.c",
        "core/transport/conn.c",
        "core/transport/deflate.c",
        "core/transport/http_serve.c",
        "core/transport/reader.c",
        "core/transport/server.c",
        "core/transport/tls.c",
        "core/transport/tls_io.c",
        "core/transport/topics.c",
        "core/transport/writer.c",
         },
         defines = { "_GNU_SOURCE", 'DX_VERSION="0.1.0"' },
         incdirs = { "core", "$(LIBEV_INCDIR)", "$(OPENSSL_INCDIR)" },
         libdirs = { "$(LIBEV_LIBDIR)", "$(OPENSSL_LIBDIR)" },
         libraries = { "ev", "ssl", "crypto", "z" },
      },
      ["duplex"] = "lua/duplex/init.lua",
      ["duplex.cli"] = "lua/duplex/cli.lua",
      ["duplex.bench"] = "lua/duplex/bench.lua",
      ["duplex.bench_app"] = "lua/duplex/bench_app.lua",
   },
   install = {
      bin = { duplex = "bin/duplex" },
   },
}
test = {
   type = "command",
   command = "make test",
}

-- The rock as a new user gets it: `luarocks make` in a clean copy of this
-- tree installs duplex into a temporary rocks tree, and the `duplex` command
-- it installs, run with only that tree's paths, serves scripts/echo.lua over
-- a real socket. Under Lua 5.4 the 5.4 rock (`luarocks --lua-version 5.4
-- make`); under LuaJIT the two Lua 5.1 rocks: Debian's `luarocks` as it
-- comes (PUC lua5.1) and configured for LuaJIT as README.md says.
--
-- Nothing is fetched (`--deps-mode=none`, sources from the copy), HOME is
-- a temporary directory (no user config, cache or tree of the caller's is
-- read or written), and everything is removed at the end.

local server = require "spec.support.server"
local h = require "spec.support.helpers"

local q = server.quote
local LUAROCKS_TIMEOUT = 300 -- seconds for one `luarocks make` (it compiles the core)

-- sh(cmd) -> output; raises with the output when cmd fails.
local function sh(cmd)
  local code, out = server.sh(cmd)
  if code ~= 0 then error(cmd .. "\nexit " .. tostring(code) .. ":\n" .. out, 2) end
  return out
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- The rocks this VM's run covers: how LuaRocks is told about its Lua, and
-- the VM the installed command must say it runs.
local ROCKS = jit and {
  { name = "Lua 5.1 as Debian's luarocks comes", version = "5.1", args = "", vm = "^Lua 5%.1$" },
  { name = "LuaJIT (luarocks configured for it)", version = "5.1", args = "", vm = "^LuaJIT 2%.",
    config = { "lua_interpreter luajit", "variables.LUA_INCDIR /usr/include/luajit-2.1" } },
} or {
  { name = "Lua 5.4", version = "5.4", args = "--lua-version 5.4", vm = "^Lua 5%.4$" },
}

-- The files of the layer, as paths under lua/ (duplex/init.lua, ...): the
-- Lua modules and the browser client duplex.js beside them.
local function lua_files(root)
  local list = sh("cd " .. q(root) .. " && find duplex \\( -name '*.lua' -o -name '*.js' \\) | LC_ALL=C sort")
  local t = {}
  for line in list:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

describe("luarocks make", function()
  local tmp, src

  setup(function()
    assert(server.sh("command -v luarocks") == 0, "these specs need luarocks (make deps installs it)")
    tmp = trim(sh("mktemp -d"))
    -- A clean clone of the working tree: tracked files and new ones, as
    -- they are now, none of the ignored (build/, node_modules/).
    src = tmp .. "/src"
    sh("mkdir " .. q(src) .. " && git ls-files -z --cached --others --exclude-standard"
      .. " | tar -c --null -T - | tar -x -C " .. q(src))
  end)

  teardown(function()
    if tmp then sh("rm -rf " .. q(tmp)) end
  end)

  for _, rock in ipairs(ROCKS) do
    describe("for " .. rock.name, function()
      local tree, home, env

      -- luarocks(words) -> output: LuaRocks as this user runs it.
      local function luarocks(words)
        return sh("cd " .. q(src) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS HOME=" .. q(home)
          .. " timeout -s KILL " .. LUAROCKS_TIMEOUT .. " luarocks " .. rock.args .. " " .. words)
      end

      setup(function()
        local dir = tmp .. "/" .. rock.name:gsub("%W+", "-")
        tree, home = dir .. "/tree", dir .. "/home"
        sh("mkdir -p " .. q(tree) .. " " .. q(home .. "/.luarocks"))
        for _, setting in ipairs(rock.config or {}) do
          luarocks("config --scope user " .. setting)
        end
        luarocks("make --deps-mode=none --tree " .. q(tree))
        -- Only the tree's paths: the command must find all it needs there.
        env = {
          LUA_PATH = trim(luarocks("path --tree " .. q(tree) .. " --lr-path")),
          LUA_CPATH = trim(luarocks("path --tree " .. q(tree) .. " --lr-cpath")),
        }
      end)

      it("installs duplex.core, every module of lua/duplex, duplex.js and the duplex command", function()
        local lib = ("%s/lib/lua/%s/duplex/core.so"):format(tree, rock.version)
        sh("test -f " .. q(lib) .. " && test -x " .. q(tree .. "/bin/duplex"))
        assert.are.same(lua_files("lua"), lua_files(("%s/share/lua/%s"):format(tree, rock.version)))
        -- Lua's symbols come from the VM that loads the module.
        local needed = sh("readelf -d " .. q(lib) .. " | grep NEEDED")
        assert.is_nil(needed:find("lua", 1, true), "duplex.core links a Lua library:\n" .. needed)
      end)

      it("installs a duplex command that names the rock's VM", function()
        local code, out, err = server.run({ "--version" }, 10, { bin = tree .. "/bin/duplex", env = env })
        assert.are.equal(0, code, err)
        local version, vm = out:match("^duplex (%d+%.%d+%.%d+) %((.-)%)\n$")
        assert.truthy(version, out)
        assert.truthy(vm:find(rock.vm), vm .. " is not the rock's Lua (" .. rock.name .. ")")
      end)

      it("installs a duplex command that serves scripts/echo.lua", function()
        local srv = server.start("scripts/echo.lua", nil, { bin = tree .. "/bin/duplex", env = env })
        local ok, err = pcall(function()
          local conn = h.open(srv.port, "/")
          h.echo(conn, "through the rock")
          h.echo(conn, "\0\1\2 binary", true)
          h.close_cleanly(conn)
          -- the browser client, found beside the installed modules
          local c = assert(require("socket").connect("127.0.0.1", srv.port))
          c:settimeout(5)
          c:send("GET /duplex.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
          local resp = c:receive("*a")
          c:close()
          assert.truthy(resp:find("^HTTP/1%.1 200 "), resp:sub(1, 200))
          assert.are.equal(server.read_file("lua/duplex/duplex.js"), resp:match("\r\n\r\n(.*)$"))
        end)
        if not ok then srv:kill() error(err, 0) end
        srv:stop()
      end)
    end)
  end
end)

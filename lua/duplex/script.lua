--- An app script made into an app: what `duplex run APP.lua` serves and
-- what duplex.test starts, loaded by one function so the two agree.
local duplex = require "duplex"
local jit_guard = require "duplex.jit_guard"

local M = {}

local function first_line(s)
  s = tostring(s)
  return (s:match("^[^\n]*"))
end

local function has_handler(t)
  for _, k in ipairs { "open", "message", "close", "pong_timeout", "upgrade", "drain" } do
    if type(t[k]) == "function" then return true end
  end
  return false
end

--- True when v is a table of handlers a script may return (at least one
-- handler function).
function M.is_handlers(v)
  return type(v) == "table" and not duplex.is_app(v) and has_handler(v)
end

-- The keys of a handlers table that are route options, not handlers.
local ROUTE_KEYS = { path = true, protocols = true, deflate = true }
-- The keys of a handlers table that are the app's hooks.
local APP_KEYS = { shutdown = true, reload = true, join = true, leave = true }

--- Makes the app that v describes: an app made with duplex.app, given
-- opts with app:configure, or a table of handlers (open, message, close,
-- pong_timeout, upgrade, drain, and subscribe and unsubscribe for pages'
-- topics (duplex.js); path, default "/", protocols, deflate;
-- shutdown, reload, join and leave, the app's on_shutdown, on_reload,
-- on_join and on_leave hooks; other
-- fields that are not functions are the script's own, state a reload hook
-- may take), served by a new duplex.app(opts). app.returned is v (what a
-- reload hook gets as previous). Returns the app (not yet listening), or
-- nil and a one-line message.
function M.make_app(v, opts)
  local ok, app, err
  if duplex.is_app(v) then
    app = v
    ok, err = pcall(app.configure, app, opts or {})
  elseif M.is_handlers(v) then
    ok, app = pcall(duplex.app, opts)
    if ok then
      local handlers = {}
      for k, f in pairs(v) do
        if not APP_KEYS[k] and (type(f) == "function" or ROUTE_KEYS[k]) then
          handlers[k] = f
        end
      end
      ok, err = pcall(app.ws, app, v.path or "/", handlers)
      if ok and v.shutdown ~= nil then ok, err = pcall(app.on_shutdown, app, v.shutdown) end
      if ok and v.reload ~= nil then ok, err = pcall(app.on_reload, app, v.reload) end
      if ok and v.join ~= nil then ok, err = pcall(app.on_join, app, v.join) end
      if ok and v.leave ~= nil then ok, err = pcall(app.on_leave, app, v.leave) end
    else
      err = app
    end
  else
    return nil, "a table of handlers or an app expected, got " .. type(v)
  end
  if not ok then return nil, first_line(err) end
  app.returned = v
  return app
end

--- Loads the script at path and makes the app it describes (make_app):
-- opts (a table of duplex.app's options) are given over the app's own;
-- tables (optional) are table options given key by key (tables.tls.cert,
-- from command-line flags), laid over the app's own table of that name.
-- Loaded again (reloading), the script runs under the guard
-- (core.guarded): one that never returns is stopped and refused. On
-- LuaJIT the script's own functions run in the interpreter, where the
-- guard's hook reaches them, unless the app's handler_timeout is 0.
-- Returns the app (not yet listening), or nil and a one-line message.
function M.load_app(path, opts, tables, reloading)
  local chunk, err = loadfile(path)
  if not chunk then
    return nil, "cannot load " .. path .. ": " .. first_line(err:gsub("^" .. path:gsub("%p", "%%%0") .. ":", ""))
  end
  jit_guard.interpret_loops(chunk)
  local ok, result = (reloading and duplex.core.guarded or pcall)(chunk)
  if not ok then return nil, "error in " .. path .. ": " .. first_line(result) end
  opts = opts or {}
  for name, given in pairs(tables or {}) do       -- over the app's own table, if it has one
    local t = {}
    local own = duplex.is_app(result) and result.options[name]
    if type(own) == "table" then
      for k, v in pairs(own) do t[k] = v end
    end
    for k, v in pairs(given) do t[k] = v end
    opts[name] = t
  end
  if not duplex.is_app(result) and not M.is_handlers(result) then
    return nil, path .. " must return a table of handlers or an app (got " .. type(result) .. ")"
  end
  local app
  app, err = M.make_app(result, opts)
  if not app then return nil, path .. ": " .. err end
  if jit and not app:guarded() then jit.on(chunk, true) end
  return app
end

return M

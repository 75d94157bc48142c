-- The README's example spec for app authors ("Testing an app") is run as
-- it stands, so it cannot go stale: its describe block joins this run,
-- and a failure in it points at its line of README.md.

local function example()
  local f = assert(io.open("README.md"))
  local text = f:read("*a")
  f:close()
  local at = assert(text:find("\n## Testing an app\n", 1, true), "README.md has no \"Testing an app\" section")
  local open_end = assert(text:find("```lua\n", at, true), "no lua block in \"Testing an app\"") + #"```lua\n"
  local close_at = assert(text:find("\n```\n", open_end, true))
  local code = text:sub(open_end, close_at)
  -- Blank lines ahead of it, so its line numbers are README.md's.
  local _, lines = text:sub(1, open_end - 1):gsub("\n", "")
  return string.rep("\n", lines) .. code
end

describe("README.md's example spec #inprocess", function()
  local code = example()
  assert.truthy(code:find('require "duplex.test"', 1, true))
  -- Loaded with busted's environment (describe, it, assert) as a spec file is.
  local env = _ENV or getfenv(1)
  local chunk
  if setfenv then
    chunk = assert(loadstring(code, "@README.md"))
    setfenv(chunk, env)
  else
    chunk = assert(load(code, "@README.md", "t", env))
  end
  chunk()
end)

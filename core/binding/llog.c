/* The log for Lua: core.log(level, event, message) writes a line of the
 * server's log (text or JSON, transport/log.h), and core.log_format([fmt])
 * reads or sets its format. */
#include "binding/binding.h"
#include "transport/log.h"

static const char *const levels[] = { "info", "warn", "error", NULL };
static const char *const formats[] = { "text", "json", NULL };

/* core.log(level, event, message): level "info", "warn" or "error";
 * event a word naming what happened. [-0, +0, e] */
static int l_log(lua_State *L)
{
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *event = luaL_checkstring(L, 2);
    const char *message = luaL_checkstring(L, 3);
    dx_log(level, event, 0, NULL, "%s", message);
    return 0;
}

/* core.log_format([fmt]) -> the format ("text" or "json") before the
 * call; with fmt, sets it for the whole process. [-0, +1, e] */
static int l_log_format(lua_State *L)
{
    int was = dx_log_is_json();
    if (!lua_isnoneornil(L, 1))
        dx_log_set_json(luaL_checkoption(L, 1, NULL, formats));
    lua_pushstring(L, formats[was]);
    return 1;
}

void dx_log_open_lib(lua_State *L)
{
    lua_pushcfunction(L, l_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, l_log_format);
    lua_setfield(L, -2, "log_format");
}

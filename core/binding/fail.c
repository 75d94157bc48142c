/* See dx_fail in binding.h: the one way a call returns nil, message, name. */
#include <stdarg.h>
#include "binding/binding.h"

int dx_fail(lua_State *L, const char *name, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, name);
    return 3;
}

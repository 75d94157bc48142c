/* See options.h: checking, storing and listing options by their rows. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "binding/options.h"

static const char *const kind_names[] = {
    "seconds", "bytes", "integer", "enum", "string", "boolean", "table", "list"
};

const dx_option *dx_opt_find(const dx_option *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    return NULL;
}

/* "'tls.cert'" or "'max_message'": the option as messages name it. */
static void full_name(char *out, size_t cap, const char *prefix, const char *name)
{
    snprintf(out, cap, "%s%s%s", prefix, *prefix ? "." : "", name);
}

/* What a value of row o must be, as messages say it. */
static void expected(const dx_option *o, char *out, size_t cap)
{
    size_t used = 0;
    switch (o->kind) {
    case DX_OPT_SECONDS:
        snprintf(out, cap, "non-negative number of seconds");
        break;
    case DX_OPT_BYTES:
    case DX_OPT_INTEGER:
        snprintf(out, cap, "integer from %.0f to %.0f", o->lo, o->hi);
        break;
    case DX_OPT_ENUM:
        out[0] = 0;
        for (int i = 0; o->words[i] && used < cap; i++)
            used += (size_t)snprintf(out + used, cap - used, "%s\"%s\"",
                                     i == 0 ? "" : o->words[i + 1] ? ", " : " or ", o->words[i]);
        break;
    case DX_OPT_STRING:
        snprintf(out, cap, "%s", o->noun);
        break;
    case DX_OPT_LIST:
        out[0] = 0;
        for (int i = 0; o->words && o->words[i] && used < cap; i++)
            used += (size_t)snprintf(out + used, cap - used, "\"%s\" or ", o->words[i]);
        if (used < cap)
            snprintf(out + used, cap - used, "a table of %ss", o->noun);
        break;
    default:
        snprintf(out, cap, "table");
        break;
    }
}

/* The value at idx as a message shows it: a number where a number was
 * expected, a quoted string where a string was, else its type. */
static void shown(lua_State *L, const dx_option *o, int idx, char *out, size_t cap)
{
    int numeric = o->kind == DX_OPT_SECONDS || o->kind == DX_OPT_BYTES || o->kind == DX_OPT_INTEGER;
    int textual = o->kind == DX_OPT_ENUM || o->kind == DX_OPT_STRING || o->kind == DX_OPT_LIST;
    if (numeric && lua_type(L, idx) == LUA_TNUMBER)
        snprintf(out, cap, "%.14g", (double)lua_tonumber(L, idx));
    else if (textual && lua_type(L, idx) == LUA_TSTRING && dx_rawlen(L, idx) == 0)
        snprintf(out, cap, "an empty string");
    else if (textual && lua_type(L, idx) == LUA_TSTRING)
        snprintf(out, cap, "\"%.60s\"", lua_tostring(L, idx));
    else
        snprintf(out, cap, "%s", luaL_typename(L, idx));
}

/* 1 when s[0..len) may be an item of the LIST row o. */
static int item_ok(const dx_option *o, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (o->item)
        return o->item(s, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == ',' || s[i] == 0x7f)
            return 0;
    return 1;
}

/* Checks the LIST value at idx: 0 when it suits row o; -1 when it is
 * neither one of o's words nor a table (the kind's message says it); 1
 * when the table is wrong, with why saying how. */
static int list_problem(lua_State *L, const dx_option *o, int idx, char *why, size_t cap)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        for (int i = 0; o->words && o->words[i]; i++)
            if (strcmp(lua_tostring(L, idx), o->words[i]) == 0)
                return 0;
        return -1;
    }
    if (!lua_istable(L, idx))
        return -1;
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    size_t n = dx_rawlen(L, idx), keys = 0, room = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys != n) {
        snprintf(why, cap, "a list of %ss expected: keys 1 to %zu and no others", o->noun, n);
        return 1;
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        size_t len = 0;
        const char *item = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (item == NULL || !item_ok(o, item, len)) {
            if (item)
                snprintf(why, cap, "entry %zu is not %s %s: \"%.60s\"", i,
                         strchr("aeiou", o->noun[0]) ? "an" : "a", o->noun, item);
            else
                snprintf(why, cap, "entry %zu is not %s %s: %s", i,
                         strchr("aeiou", o->noun[0]) ? "an" : "a", o->noun, luaL_typename(L, -1));
            lua_pop(L, 1);
            return 1;
        }
        room += len + 1;
        lua_pop(L, 1);
    }
    if (room > o->fsize && o->ftype == DX_FIELD_CHARS) {
        snprintf(why, cap, "at most %u bytes of %ss in all, got %zu", o->fsize - 1, o->noun, room - 1);
        return 1;
    }
    return 0;
}

static int valid(lua_State *L, const dx_option *o, int idx)
{
    switch (o->kind) {
    case DX_OPT_SECONDS:
        return lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) >= 0;
    case DX_OPT_BYTES:
    case DX_OPT_INTEGER:
        return dx_isinteger(L, idx) && lua_tonumber(L, idx) >= o->lo && lua_tonumber(L, idx) <= o->hi;
    case DX_OPT_ENUM:
        if (lua_type(L, idx) != LUA_TSTRING)
            return 0;
        for (int i = 0; o->words[i]; i++)
            if (strcmp(lua_tostring(L, idx), o->words[i]) == 0)
                return 1;
        return 0;
    case DX_OPT_STRING:
        return lua_type(L, idx) == LUA_TSTRING && dx_rawlen(L, idx) > 0;
    default:
        return 1;                      /* BOOLEAN: any value; TABLE: its own reader */
    }
}

void dx_opt_check(lua_State *L, const dx_option *o, int idx, const char *what, const char *prefix)
{
    char why[160] = "";
    if (o->kind == DX_OPT_LIST ? list_problem(L, o, idx, why, sizeof why) == 0 : valid(L, o, idx))
        return;
    char name[96], exp[160], got[80];
    full_name(name, sizeof name, prefix, o->name);
    if (why[0])
        luaL_error(L, "bad %s '%s' (%s)", what, name, why);
    expected(o, exp, sizeof exp);
    shown(L, o, idx, got, sizeof got);
    luaL_error(L, "bad %s '%s' (%s expected, got %s)", what, name, exp, got);
}

int dx_opt_word(lua_State *L, const dx_option *o, int idx, const char *what, const char *prefix)
{
    dx_opt_check(L, o, idx, what, prefix);
    for (int i = 0; o->words[i]; i++)
        if (strcmp(lua_tostring(L, idx), o->words[i]) == 0)
            return i;
    return 0;                           /* not reached: dx_opt_check raised */
}

/* Writes v into o's field at base. */
static void put_number(const dx_option *o, void *base, double v)
{
    char *p = (char *)base + o->offset;
    if (o->ftype == DX_FIELD_DOUBLE) {
        double d = v;
        memcpy(p, &d, sizeof d);
    } else if (o->ftype == DX_FIELD_INT) {
        int i = (int)v;
        memcpy(p, &i, sizeof i);
    } else if (o->fsize == sizeof(uint64_t)) {
        uint64_t u = (uint64_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
    }
}

/* Copies the LIST value at idx (checked) into o's field at base. */
static void put_list(lua_State *L, const dx_option *o, int idx, void *base)
{
    char *p = (char *)base + o->offset;
    if (lua_type(L, idx) == LUA_TSTRING) {
        snprintf(p, o->fsize, "%s", lua_tostring(L, idx));
        return;
    }
    size_t used = 0, n = dx_rawlen(L, idx);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        size_t len;
        const char *item = lua_tolstring(L, -1, &len);
        memcpy(p + used, item, len);
        p[used + len] = '\n';
        used += len + 1;
        lua_pop(L, 1);
    }
    p[used] = 0;
}

void dx_opt_store(lua_State *L, const dx_option *o, int idx, void *base, const char *what,
                  const char *prefix)
{
    if (lua_isnoneornil(L, idx))
        return;
    dx_opt_check(L, o, idx, what, prefix);
    if (o->ftype == DX_FIELD_NONE)
        return;
    if (o->kind == DX_OPT_ENUM)
        put_number(o, base, dx_opt_word(L, o, idx, what, prefix));
    else if (o->kind == DX_OPT_BOOLEAN)
        put_number(o, base, lua_toboolean(L, idx));
    else if (o->kind == DX_OPT_LIST)
        put_list(L, o, idx, base);
    else if (o->ftype == DX_FIELD_STRING) {
        const char *s = lua_tostring(L, idx);
        memcpy((char *)base + o->offset, &s, sizeof s);
    } else
        put_number(o, base, lua_tonumber(L, idx));
}

void dx_opt_get(lua_State *L, int t, const dx_option *o, void *base, const char *what,
                const char *prefix)
{
    lua_getfield(L, t, o->name);
    dx_opt_store(L, o, lua_gettop(L), base, what, prefix);
    lua_pop(L, 1);                      /* a stored string stays reachable through t */
}

void dx_opt_check_keys(lua_State *L, int t, const dx_option *list, size_t n, const char *what,
                       const char *prefix)
{
    t = t < 0 ? lua_gettop(L) + t + 1 : t;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (k == NULL || dx_opt_find(list, n, k) == NULL) {
            char name[96];
            full_name(name, sizeof name, prefix, k ? k : luaL_typename(L, -1));
            luaL_error(L, "unknown %s '%s'", what, name);
        }
    }
}

void dx_opt_read(lua_State *L, int t, const dx_option *list, size_t n, void *base, const char *what,
                 const char *prefix)
{
    if (lua_isnoneornil(L, t))
        return;
    luaL_checktype(L, t, LUA_TTABLE);
    t = t < 0 ? lua_gettop(L) + t + 1 : t;
    dx_opt_check_keys(L, t, list, n, what, prefix);
    for (size_t i = 0; i < n; i++)
        dx_opt_get(L, t, &list[i], base, what, prefix);
}

/* Numbers that are whole go to Lua as integers (5.4 prints them so). */
static void push_whole(lua_State *L, double v)
{
    if (v == (double)(lua_Integer)v)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

/* Pushes the default of row o: its field in defaults, else its number. */
static void push_default(lua_State *L, const dx_option *o, const void *defaults)
{
    const char *p = (const char *)defaults + o->offset;
    double d;
    int i;
    uint64_t u = 0;
    switch (o->ftype) {
    case DX_FIELD_NONE:
        if (o->kind == DX_OPT_BYTES || o->kind == DX_OPT_INTEGER || o->kind == DX_OPT_SECONDS)
            push_whole(L, o->def);
        else if (o->kind == DX_OPT_ENUM)
            lua_pushstring(L, o->words[(int)o->def]);   /* def: the index of its word */
        else
            lua_pushnil(L);
        return;
    case DX_FIELD_DOUBLE:
        memcpy(&d, p, sizeof d);
        push_whole(L, d);
        return;
    case DX_FIELD_INT:
        memcpy(&i, p, sizeof i);
        if (o->kind == DX_OPT_ENUM)
            lua_pushstring(L, o->words[i]);
        else if (o->kind == DX_OPT_BOOLEAN)
            lua_pushboolean(L, i);
        else
            lua_pushinteger(L, i);
        return;
    case DX_FIELD_STRING:
        lua_pushnil(L);                 /* a string option's default is "unset" */
        return;
    case DX_FIELD_CHARS:                /* a LIST: nil when empty, a word, or its items */
        if (*p == 0 || strchr(p, '\n') == NULL) {
            if (*p)
                lua_pushstring(L, p);
            else
                lua_pushnil(L);
            return;
        }
        lua_newtable(L);
        for (int n = 1; *p; n++) {
            const char *end = strchr(p, '\n');
            lua_pushlstring(L, p, (size_t)(end - p));
            lua_rawseti(L, -2, n);
            p = end + 1;
        }
        return;
    default:
        if (o->fsize == sizeof u) {
            memcpy(&u, p, sizeof u);
        } else {
            uint32_t w;
            memcpy(&w, p, sizeof w);
            u = w;
        }
        lua_pushinteger(L, (lua_Integer)u);
        return;
    }
}

static void set_string(lua_State *L, const char *k, const char *v)
{
    if (v == NULL)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void dx_opt_push_list(lua_State *L, const dx_option *list, size_t n, const void *defaults)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const dx_option *o = &list[i];
        lua_createtable(L, 0, 10);
        set_string(L, "name", o->name);
        set_string(L, "kind", kind_names[o->kind]);
        if (o->kind == DX_OPT_BYTES || o->kind == DX_OPT_INTEGER) {
            push_whole(L, o->lo);
            lua_setfield(L, -2, "min");
            push_whole(L, o->hi);
            lua_setfield(L, -2, "max");
        }
        if (o->words) {
            lua_newtable(L);
            for (int w = 0; o->words[w]; w++) {
                lua_pushstring(L, o->words[w]);
                lua_rawseti(L, -2, w + 1);
            }
            lua_setfield(L, -2, "values");
        }
        set_string(L, "noun", o->noun);
        push_default(L, o, defaults);
        lua_setfield(L, -2, "default");
        set_string(L, "unset", o->unset);
        set_string(L, "flag", o->flag);
        set_string(L, "doc", o->doc);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

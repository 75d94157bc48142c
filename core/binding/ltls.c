/* The server's `tls` option and server:reload_tls(): the Lua table checked
 * and turned into a transport/tls.h configuration. */
#include <stdio.h>
#include <string.h>
#include "binding/binding.h"
#include "transport/tls.h"

static const char *const tls_keys[] = { "cert", "key", "ca", "ciphers", "min_version", "sni", NULL };
static const char *const site_keys[] = { "names", "cert", "key", NULL };

/* Raises on a key of the table at idx that is not in keys. */
static void check_keys(lua_State *L, int idx, const char *const *keys, const char *what)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int known = 0;
        for (int i = 0; k && keys[i]; i++)
            known |= strcmp(k, keys[i]) == 0;
        if (!known)
            luaL_error(L, "unknown option '%s.%s'", what, k ? k : luaL_typename(L, -1));
    }
}

/* t[k] when it is a string, NULL when nil; raises otherwise. The string
 * stays reachable through t. */
static const char *opt_string(lua_State *L, int t, const char *k, const char *what, const char *expected)
{
    lua_getfield(L, t, k);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING && dx_rawlen(L, -1) > 0)
        s = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "bad option '%s.%s' (%s expected, got %s)", what, k, expected,
                   lua_type(L, -1) == LUA_TSTRING ? "an empty string" : luaL_typename(L, -1));
    lua_pop(L, 1);
    return s;
}

/* Reads tls.sni[i] at idx into *site; names go into a scratch userdata
 * left on the stack. */
static void read_site(lua_State *L, int idx, int i, dx_tls_site *site)
{
    char what[32];
    snprintf(what, sizeof what, "tls.sni[%d]", i);
    if (!lua_istable(L, idx))
        luaL_error(L, "bad option '%s' (table expected, got %s)", what, luaL_typename(L, idx));
    check_keys(L, idx, site_keys, what);
    site->cert = opt_string(L, idx, "cert", what, "file name");
    site->key = opt_string(L, idx, "key", what, "file name");
    if (site->cert == NULL || site->key == NULL)
        luaL_error(L, "bad option '%s' (cert and key file names expected)", what);
    lua_getfield(L, idx, "names");
    int names = lua_gettop(L);
    size_t n = lua_type(L, names) == LUA_TSTRING ? 1 : lua_istable(L, names) ? dx_rawlen(L, names) : 0;
    if (n == 0)
        luaL_error(L, "bad option '%s.names' (host name or list of host names expected)", what);
    const char **list = dx_newuserdata(L, n * sizeof *list);
    for (size_t j = 0; j < n; j++) {
        if (lua_type(L, names) == LUA_TSTRING) {
            list[j] = lua_tostring(L, names);
            continue;
        }
        lua_rawgeti(L, names, (int)j + 1);
        if (lua_type(L, -1) != LUA_TSTRING || dx_rawlen(L, -1) == 0)
            luaL_error(L, "bad option '%s.names' (entry %d is not a host name)", what, (int)j + 1);
        list[j] = lua_tostring(L, -1);   /* reachable through the names table */
        lua_pop(L, 1);
    }
    site->names = list;
    site->nnames = n;
    lua_remove(L, names);                /* the scratch stays, the table stays reachable */
}

void dx_tls_read_option(lua_State *L, int t, dx_server *srv)
{
    if (lua_isnoneornil(L, t))
        return;
    lua_getfield(L, t, "tls");
    int tls = lua_gettop(L);
    if (lua_isnil(L, tls) || (lua_type(L, tls) == LUA_TBOOLEAN && !lua_toboolean(L, tls))) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, tls))
        luaL_error(L, "bad option 'tls' (table expected, got %s)", luaL_typename(L, tls));
    check_keys(L, tls, tls_keys, "tls");
    dx_tls_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cert = opt_string(L, tls, "cert", "tls", "file name");
    cfg.key = opt_string(L, tls, "key", "tls", "file name");
    cfg.ca = opt_string(L, tls, "ca", "tls", "file name");
    cfg.ciphers = opt_string(L, tls, "ciphers", "tls", "OpenSSL cipher list");
    if ((cfg.cert == NULL) != (cfg.key == NULL))
        luaL_error(L, "bad option 'tls.%s' (file name expected: cert and key go together)",
                   cfg.cert ? "key" : "cert");
    const char *v = opt_string(L, tls, "min_version", "tls", "\"1.2\" or \"1.3\"");
    if (v && strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0)
        luaL_error(L, "bad option 'tls.min_version' (\"1.2\" or \"1.3\" expected, got \"%s\")", v);
    cfg.min_version = v && strcmp(v, "1.3") == 0 ? 13 : 12;
    lua_getfield(L, tls, "sni");
    int sni = lua_gettop(L);
    if (!lua_isnil(L, sni)) {
        if (!lua_istable(L, sni))
            luaL_error(L, "bad option 'tls.sni' (list of {names=, cert=, key=} expected, got %s)",
                       luaL_typename(L, sni));
        cfg.nsites = dx_rawlen(L, sni);
        dx_tls_site *sites = dx_newuserdata(L, (cfg.nsites ? cfg.nsites : 1) * sizeof *sites);
        for (size_t i = 0; i < cfg.nsites; i++) {
            lua_rawgeti(L, sni, (int)i + 1);
            read_site(L, lua_gettop(L), (int)i + 1, &sites[i]);
            /* the site table stays on the stack above its names' scratch */
        }
        cfg.sites = sites;
    }
    if (cfg.cert == NULL && cfg.nsites == 0)
        luaL_error(L, "bad option 'tls' (cert and key, or sni, expected)");
    dx_tls *made = dx_tls_new(&cfg);
    if (made == NULL)
        luaL_error(L, "out of memory");
    if (dx_server_set_tls(srv, made) < 0)
        luaL_error(L, "bad option 'tls' (it cannot change once the server listens)");
    lua_settop(L, tls - 1);
}

/* server:reload_tls() -> true | nil, message, "ETLS": reads the
 * certificate and key files again; new connections get them, open ones
 * keep theirs; on failure the certificates in use stay. */
int dx_tls_reload(lua_State *L)
{
    dx_lserver *ls = luaL_checkudata(L, 1, DX_SERVER_MT);
    if (ls->srv == NULL)
        return luaL_error(L, "attempt to use a closed server");
    char err[512];
    if (dx_server_reload_tls(ls->srv, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "ETLS");
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* server:tls() -> whether the server speaks TLS */
int dx_tls_enabled(lua_State *L)
{
    dx_lserver *ls = luaL_checkudata(L, 1, DX_SERVER_MT);
    lua_pushboolean(L, ls->srv && dx_server_tls(ls->srv));
    return 1;
}

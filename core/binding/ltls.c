/* The server's `tls` option and server:reload_tls(): the Lua table checked
 * and turned into a transport/tls.h configuration. */
#include <stdio.h>
#include <string.h>
#include "binding/binding.h"
#include "transport/tls.h"

static const char *const tls_versions[] = { "1.2", "1.3", NULL };

#define TLS(f) DX_FIELD(dx_tls_config, f)
#define SITE(f) DX_FIELD(dx_tls_site, f)

/* The keys of the `tls` table (min_version and sni are read below). */
static const dx_option tls_options[] = {
    { .name = "cert", .kind = DX_OPT_STRING, TLS(cert), .noun = "file name" },
    { .name = "key", .kind = DX_OPT_STRING, TLS(key), .noun = "file name" },
    { .name = "ca", .kind = DX_OPT_STRING, TLS(ca), .noun = "file name" },
    { .name = "ciphers", .kind = DX_OPT_STRING, TLS(ciphers), .noun = "OpenSSL cipher list" },
    { .name = "min_version", .kind = DX_OPT_ENUM, .words = tls_versions },
    { .name = "sni", .kind = DX_OPT_TABLE },
};

/* The keys of one tls.sni entry (names is read below). */
static const dx_option site_options[] = {
    { .name = "names", .kind = DX_OPT_TABLE },
    { .name = "cert", .kind = DX_OPT_STRING, SITE(cert), .noun = "file name" },
    { .name = "key", .kind = DX_OPT_STRING, SITE(key), .noun = "file name" },
};

/* Reads tls.sni[i] at idx into *site; names go into a scratch userdata
 * left on the stack. */
static void read_site(lua_State *L, int idx, int i, dx_tls_site *site)
{
    char what[32];
    snprintf(what, sizeof what, "tls.sni[%d]", i);
    memset(site, 0, sizeof *site);
    if (!lua_istable(L, idx))
        luaL_error(L, "bad option '%s' (table expected, got %s)", what, luaL_typename(L, idx));
    dx_opt_read(L, idx, site_options, DX_COUNT(site_options), site, "option", what);
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
    dx_tls_config cfg;
    memset(&cfg, 0, sizeof cfg);
    dx_opt_read(L, tls, tls_options, DX_COUNT(tls_options), &cfg, "option", "tls");
    if ((cfg.cert == NULL) != (cfg.key == NULL))
        luaL_error(L, "bad option 'tls.%s' (file name expected: cert and key go together)",
                   cfg.cert ? "key" : "cert");
    lua_getfield(L, tls, "min_version");
    const dx_option *version = dx_opt_find(tls_options, DX_COUNT(tls_options), "min_version");
    cfg.min_version = lua_isnil(L, -1) ? 12 : 12 + dx_opt_word(L, version, -1, "option", "tls");
    lua_pop(L, 1);
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
    if (dx_server_reload_tls(ls->srv, err, sizeof err) < 0)
        return dx_fail(L, "ETLS", "%s", err);
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

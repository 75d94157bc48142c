/* The Redis engine's server-side scripts: each is one atomic step (see
 * redis_internal.h for their keys and arguments). Their messages follow
 * redis_env.h; f() writes one field. */
#include "broker/redis_internal.h"

#define FIELD "local function f(s) return #s .. ':' .. s end\n"

/* KEYS meta, stream, channel; ARGV size, ttl ms, node, binary, data,
 * epoch to use when the topic has none, the publisher (decimal, given
 * back to its node). Returns {epoch, offset}. A new
 * epoch starts with an empty stream, so explicit ids never go back. */
static const char publish_lua[] = FIELD
    "local epoch = redis.call('HGET', KEYS[1], 'e')\n"
    "if not epoch then\n"
    "  epoch = ARGV[6]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)\n"
    "end\n"
    "local off = string.format('%d', redis.call('HINCRBY', KEYS[1], 'o', 1))\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], off .. '-0', 'b', ARGV[4], 'd', ARGV[5])\n"
    "local ttl = tonumber(ARGV[2])\n"
    "if ttl > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "  redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "end\n"
    "redis.call('PUBLISH', KEYS[3], 'Dh' .. ARGV[4] .. f(ARGV[3]) .. f(epoch) .. f(off) .. f(ARGV[5]) .. f(ARGV[7]))\n"
    "return {epoch, off}\n";

/* KEYS meta, stream, node channel; ARGV since offset, since epoch, count,
 * epoch to use when the topic has none, ttl ms, request id. Publishes
 * the answer on the node's channel, so that it reaches the node in order
 * with the topic's publications: 'R', id, epoch, top, then per entry
 * offset, binary, data. */
static const char recover_lua[] = FIELD
    "local epoch = redis.call('HGET', KEYS[1], 'e')\n"
    "if not epoch then\n"
    "  epoch = ARGV[4]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)\n"
    "  local ttl = tonumber(ARGV[5])\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "end\n"
    "local top = redis.call('HGET', KEYS[1], 'o')\n"
    "local out = {'R', f(ARGV[6]), f(epoch), f(top)}\n"
    "if ARGV[2] == '' then\n"
    "  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', tonumber(ARGV[3]) - 1)\n"
    "  for i = #newest, 1, -1 do\n"
    "    local v = newest[i][2]\n"
    "    out[#out + 1] = f(string.match(newest[i][1], '^%d+')) .. f(v[2]) .. f(v[4])\n"
    "  end\n"
    "elseif epoch == ARGV[2] and tonumber(top) > tonumber(ARGV[1]) then\n"
    "  local from = string.format('%d', tonumber(ARGV[1]) + 1) .. '-0'\n"
    "  for _, e in ipairs(redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', ARGV[3])) do\n"
    "    local v = e[2]\n"
    "    out[#out + 1] = f(string.match(e[1], '^%d+')) .. f(v[2]) .. f(v[4])\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', KEYS[3], table.concat(out))\n"
    "return 1\n";

/* KEYS members, expiries, channel; ARGV ttl ms, then pairs of member key
 * and record. Joins or refreshes; a member new to the hash, or whose record changed
 * (a new info: a rename), is announced. */
static const char join_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[1])\n"
    "for i = 2, #ARGV, 2 do\n"
    "  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "    redis.call('PUBLISH', KEYS[3], 'Dj0' .. ARGV[i + 1])\n"
    "  end\n"
    "  redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * ttl)\n"
    "redis.call('PEXPIRE', KEYS[2], 2 * ttl)\n"
    "return 1\n";

/* KEYS members, expiries, channel; ARGV member keys. */
static const char leave_lua[] =
    "for i = 1, #ARGV do\n"
    "  local v = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "  if v then\n"
    "    redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "    redis.call('PUBLISH', KEYS[3], 'Dl0' .. v)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* KEYS members, expiries, channel; ARGV '1' to list. Removes the expired
 * members and announces their leave (only the call that removed one
 * does); returns the live members' records when asked. */
static const char cleanup_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do\n"
    "  local v = redis.call('HGET', KEYS[1], k)\n"
    "  redis.call('ZREM', KEYS[2], k)\n"
    "  if v then\n"
    "    redis.call('HDEL', KEYS[1], k)\n"
    "    redis.call('PUBLISH', KEYS[3], 'Dl0' .. v)\n"
    "  end\n"
    "end\n"
    "if ARGV[1] == '1' then return redis.call('HVALS', KEYS[1]) end\n"
    "return 0\n";

const char *const dx_redis_scripts[DX_RS_COUNT] = {
    [DX_RS_PUBLISH] = publish_lua,
    [DX_RS_RECOVER] = recover_lua,
    [DX_RS_JOIN] = join_lua,
    [DX_RS_LEAVE] = leave_lua,
    [DX_RS_CLEANUP] = cleanup_lua,
};

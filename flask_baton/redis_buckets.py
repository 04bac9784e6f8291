"""The rate limits' buckets in Redis: each operation one Lua script, atomic on the server.

The script is ``buckets``'s arithmetic written again in Lua (``admit``,
``release``, ``reclaim``, ``forget``, ``correct``, ``slow_down``) on the same
JSON, so a bucket is read, changed and written back in one round trip with
no other client in between, and nothing is sent back but the answer.
``tests/test_redis_buckets.py`` runs both on the same random operations and
compares every answer and every bucket. The time is Redis's own (``TIME``),
so consumers on hosts whose clocks differ still agree on the window.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from .buckets import WAITER_GRACE, Bucket, RateLimitUsage, Request, Verdict
from .limiter import Limiter
from .limits import Limit

#: KEYS: the bucket, the set of keys in use. ARGV: the operation, its JSON
#: arguments (``limit``, and ``now`` only in tests), WAITER_GRACE, the idle TTL, the key.
SCRIPT = """
local args = cjson.decode(ARGV[2])
local grace, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = args.now
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local lim = args.limit
local rpm, tpm, conc, win = lim.rpm, lim.tpm, lim.concurrency, lim.window
local paced = rpm ~= nil or tpm ~= nil
local raw = redis.call('GET', KEYS[1])
local b
if raw then b = cjson.decode(raw) else b = {c = {}, w = {}, s = {}, u = 0} end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function forget_old(keep)
  local calls, waiters = {}, {}
  for _, c in ipairs(b.c) do if c[1] > now - win then calls[#calls + 1] = c end end
  for _, w in ipairs(b.w) do if w[4] >= now or w[2] == keep then waiters[#waiters + 1] = w end end
  b.c, b.w = calls, waiters
end

-- the earliest time each of the first n waiters may be granted (buckets._turns)
local function turns(n)
  local times, toks, inw = {}, {}, 0
  for i, c in ipairs(b.c) do times[i] = c[1]; toks[i] = c[2]; inw = inw + c[2] end
  local oldest, turn, out = 1, math.max(now, b.u), {}
  for i = 1, n do
    local w = b.w[i]
    if rpm ~= nil and #times >= rpm then turn = math.max(turn, times[#times - rpm + 1] + win) end
    while oldest <= #times and times[oldest] <= turn - win do
      inw = inw - toks[oldest]; oldest = oldest + 1
    end
    if tpm ~= nil then
      while oldest <= #times and inw + w[3] > tpm do
        turn = math.max(turn, times[oldest] + win); inw = inw - toks[oldest]; oldest = oldest + 1
      end
    end
    out[i] = turn
    if paced then times[#times + 1] = turn; toks[#toks + 1] = w[3]; inw = inw + w[3] end
  end
  return out
end

local function to_wake()
  local out = {}
  if conc == nil or #b.w == 0 then return out end
  local free = conc - count(b.s)
  if free <= 0 then return out end
  local n = math.min(free, #b.w)
  local tr = turns(n)
  for i = 1, n do
    if tr[i] <= now then
      b.w[i][4] = math.min(b.w[i][4], now + grace)
      out[#out + 1] = b.w[i][2]
    end
  end
  return out
end

local function usage(result)
  local tokens, waiting = 0, 0
  for _, c in ipairs(b.c) do tokens = tokens + c[2] end
  for _, w in ipairs(b.w) do if w[4] >= now then waiting = waiting + 1 end end
  result.calls, result.tokens, result.running, result.waiting, result.slowed = #b.c, tokens, count(b.s), waiting, b.u
  return result
end

local function admit()
  local req = args.request
  forget_old(req.node)
  local me
  for _, w in ipairs(b.w) do if w[2] == req.node then w[3] = req.tokens; me = w end end
  if me == nil then
    me = {now, req.node, req.tokens, now}
    b.w[#b.w + 1] = me
    table.sort(b.w, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)
  end
  local pos
  for i, w in ipairs(b.w) do if w == me then pos = i end end
  local tr = turns(pos)
  local due_ahead = 0
  for i = 1, pos - 1 do if tr[i] <= now then due_ahead = due_ahead + 1 end end
  if tr[pos] <= now and (conc == nil or count(b.s) + due_ahead < conc) then
    table.remove(b.w, pos)
    if paced then b.c[#b.c + 1] = {now, req.tokens, req.ref} end
    if conc ~= nil then b.s[req.node] = {req.worker, now} end
    return {granted = true, at = now}
  end
  local result = {granted = false, at = now, position = pos - 1}
  if tr[pos] > now then
    me[4] = tr[pos] + grace
    result['until'], result.for_slot = tr[pos], false
  else
    me[4] = now + args.fallback + grace
    result['until'], result.for_slot = now + args.fallback, true
  end
  return usage(result)
end

local function without(nodes)
  local gone = {}
  for _, node in ipairs(nodes) do gone[node] = true end
  return gone
end

local answer
local op = ARGV[1]
if op == 'admit' then
  answer = admit()
elseif op == 'release' then
  b.s[args.node] = nil
  forget_old('')
  answer = to_wake()
elseif op == 'reclaim' then
  for _, node in ipairs(args.nodes) do b.s[node] = nil end
  forget_old('')
  answer = to_wake()
elseif op == 'forget' then
  local gone, waiters = without(args.nodes), {}
  for _, w in ipairs(b.w) do if not gone[w[2]] then waiters[#waiters + 1] = w end end
  b.w = waiters
  answer = to_wake()
elseif op == 'correct' then
  for _, c in ipairs(b.c) do if c[3] == args.ref then c[2] = args.tokens; break end end
  answer = {}
elseif op == 'slow_down' then
  b.u = math.max(b.u, now + args.seconds)
  answer = {}
else
  return redis.error_reply('unknown operation ' .. op)
end
redis.call('SET', KEYS[1], cjson.encode(b), 'EX', ttl)
redis.call('SADD', KEYS[2], ARGV[5])
return cjson.encode(answer)
"""


class RedisLimiter(Limiter):
    """Buckets as Redis strings under ``prefix``, each operation one ``SCRIPT`` call.

    A bucket untouched for a day expires. ``prefix + "keys"`` is the set of
    keys in use, for ``buckets``. ``clock``: tests pin the time the script uses.
    """

    IDLE_TTL = 86400

    def __init__(self, client: Any, prefix: str, owned: bool, clock: Callable[[], float] | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._owned = owned
        self._clock = clock
        self._script = client.register_script(SCRIPT)

    def _run(self, operation: str, key: str, limit: Limit, **args: Any) -> Any:
        fields = {"rpm": limit.rpm, "tpm": limit.tpm, "concurrency": limit.concurrency, "window": limit.window}
        payload: dict[str, Any] = {"limit": {name: value for name, value in fields.items() if value is not None}}
        payload.update(args)
        if self._clock is not None:
            payload["now"] = self._clock()
        keys = [self._prefix + "bucket:" + key, self._prefix + "keys"]
        answer = self._script(keys=keys, args=[operation, json.dumps(payload), WAITER_GRACE, self.IDLE_TTL, key])
        return json.loads(answer) or []  # Lua's cjson writes an empty list as {}

    def admit(self, key: str, limit: Limit, request: Request, slot_fallback: float) -> Verdict:
        found = self._run(
            "admit",
            key,
            limit,
            request={"node": request.node_id, "ref": request.ref, "worker": request.worker, "tokens": request.tokens},
            fallback=slot_fallback,
        )
        if found["granted"]:
            return Verdict(True, found["at"])
        usage = RateLimitUsage(
            key, limit, found["calls"], found["tokens"], found["running"], found["waiting"], found["slowed"]
        )
        return Verdict(False, found["at"], found["until"], found["for_slot"], found["position"], usage)

    def release(self, key: str, limit: Limit, node_id: str) -> list[str]:
        return list(self._run("release", key, limit, node=node_id))

    def reclaim(self, key: str, limit: Limit, dead: Collection[str]) -> list[str]:
        return list(self._run("reclaim", key, limit, nodes=sorted(dead)))

    def forget(self, key: str, limit: Limit, gone: Collection[str]) -> list[str]:
        return list(self._run("forget", key, limit, nodes=sorted(gone)))

    def correct(self, key: str, limit: Limit, ref: str, tokens: int) -> None:
        self._run("correct", key, limit, ref=ref, tokens=tokens)

    def slow_down(self, key: str, limit: Limit, seconds: float) -> None:
        self._run("slow_down", key, limit, seconds=seconds)

    def buckets(self) -> dict[str, Bucket]:
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in self._client.smembers(self._prefix + "keys"))
        texts = self._client.mget([self._prefix + "bucket:" + key for key in keys]) if keys else []
        return {key: Bucket.loads(text) for key, text in zip(keys, texts, strict=True) if text}

    def close(self) -> None:
        if self._owned:
            self._client.close()

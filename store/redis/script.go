package redis

import goredis "github.com/redis/go-redis/v9"

// gcraScript decides one request for one key with GCRA.
//
// KEYS[1] is the counter: a string holding the key's theoretical arrival time (TAT) in Unix
// nanoseconds, which expires (PX) when the TAT passes, since the key then behaves as a fresh one.
// ARGV: the emission interval and the tolerance (burst x interval), both in nanoseconds; n, the
// units to admit (0 only reports); and the time as Unix seconds and nanoseconds, or two empty
// strings to use the server's clock (TIME). The TAT is split into seconds and nanoseconds so that
// every number the script computes stays below 2^53, where Lua's doubles are exact integers (the
// tolerance is at most 2^53: billing.MaxBurstRefill).
//
// It returns {allowed (1 or 0), remaining units, retry after (ns), reset after (ns)}; for n = 0,
// allowed says whether one unit would be admitted now.
var gcraScript = goredis.NewScript(`
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local sec, nsec
if ARGV[4] == '' then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  sec = tonumber(t[1])
  nsec = tonumber(t[2]) * 1000
else
  sec = tonumber(ARGV[4])
  nsec = tonumber(ARGV[5])
end

local ahead = 0
local v = redis.call('GET', KEYS[1])
if v then
  local len = string.len(v)
  local tsec, tnsec = 0, tonumber(v)
  if len > 9 then
    tsec = tonumber(string.sub(v, 1, len - 9))
    tnsec = tonumber(string.sub(v, len - 8))
  end
  ahead = (tsec - sec) * 1000000000 + (tnsec - nsec)
  if ahead < 0 then ahead = 0 end
end

local remaining = math.floor((tau - ahead) / interval)
if remaining < 0 then remaining = 0 end
if n == 0 then
  local retry = ahead + interval - tau
  if retry <= 0 then return {1, remaining, 0, ahead} end
  return {0, remaining, retry, ahead}
end

local cost = n * interval
if ahead > tau - cost then
  return {0, remaining, ahead - (tau - cost), ahead}
end
ahead = ahead + cost
local tat = nsec + ahead
local tsec = sec + math.floor(tat / 1000000000)
tat = tat % 1000000000
redis.call('SET', KEYS[1], string.format('%d%09d', tsec, tat), 'PX', math.ceil(ahead / 1000000))
return {1, math.floor((tau - ahead) / interval), 0, ahead}
`)

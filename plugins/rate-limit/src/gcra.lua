-- GCRA (the same algorithm governor runs in process) in one atomic Redis call.
--
-- KEYS[1]  the bucket: its value is the theoretical arrival time (TAT), in
--          microseconds of Redis server time, at which the bucket is full again
-- ARGV[1]  emission interval in microseconds (1 s / rate), a whole number >= 1
-- ARGV[2]  burst (bucket size), a whole number >= 1
--
-- Returns {allowed (1|0), remaining, wait_us}: `remaining` requests still fit
-- after this one (0 when refused); `wait_us` is, when refused, how long until
-- the next request fits.
--
-- The clock is the Redis server's `TIME`, so the hosts sharing the bucket need
-- no synchronised clocks. Times are microseconds since the epoch (about 1.7e15,
-- exact in a Lua double up to 2^53); they are written with '%.0f' because Lua's
-- default number formatting keeps only 14 digits.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
-- A request fits when the bucket, after taking it, is at most `burst` requests deep.
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now}
end
-- The key expires exactly when the bucket is full again: a full bucket and no key are the same.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), 0}

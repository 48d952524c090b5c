-- wrk script for bench/compare: every request asks for a variant no earlier request asked for, so that
-- no result cache (imgedge's included) can answer. Width walks 700..899 and quality 60..89, per thread
-- interleaved. The path template comes from the environment, with %d for the width and %d for quality:
--   WRK_PATH='/photos/x.jpg?w=%d&q=%d&fm=webp' wrk -s bench/vary.lua http://127.0.0.1:3110
local fmt = os.getenv("WRK_PATH")
local threads = 0
local n = 0
local id = 0
local step = 1

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  id = tonumber(wrk.thread:get("id")) or 0
  step = tonumber(os.getenv("WRK_THREADS") or "2")
end

request = function()
  local k = n * step + id
  n = n + 1
  local w = 700 + (k % 200)
  local q = 60 + (math.floor(k / 200) % 30)
  return wrk.format("GET", string.format(fmt, w, q))
end

-- wrk script for bench/run.sh: walks the real /sales?employee_id= ids exactly once, split
-- across wrk's threads, so the simulator serves the same sales requests a sync makes.
-- Env: BENCH_IDS_FILE (one employee id a line), WRK_THREADS (= wrk's -t), BENCH_WRK_DONE (a
-- fresh file path the threads use to find out which of them finished last).
-- wrk itself always runs for its whole -d: the last thread to finish sends wrk SIGINT, which
-- ends it early, and the walk is timed here with CLOCK_MONOTONIC, first request to last answer.
-- `done` prints one JSON line: walked, non_200, seconds, bytes, socket_errors.
local ffi = require("ffi")
ffi.cdef [[
  struct bench_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct bench_timespec* ts);
  int getpid(void);
  int kill(int pid, int sig);
]]
local ts = ffi.new("struct bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC: comparable across wrk's threads
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  mine = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
    if line:match("^%d+$") then
      if i % nthreads == tid then
        table.insert(mine, wrk.format("GET", "/sales?employee_id=" .. line))
      end
      i = i + 1
    end
  end
  next_req, answered, bad, bytes, t0, t1 = 1, 0, 0, 0, 0, 0
end

function request()
  if next_req == 1 then t0 = now() end
  -- Past the end of the walk (other connections still busy) repeat the last id: those extra
  -- answers come after this thread's walk ended and are not counted.
  local r = mine[math.min(next_req, #mine)]
  next_req = next_req + 1
  return r
end

function response(status, headers, body)
  if answered >= #mine then return end
  answered = answered + 1
  bytes = bytes + #body
  if status ~= 200 then bad = bad + 1 end
  if answered == #mine then
    t1 = now()
    local f = io.open(os.getenv("BENCH_WRK_DONE"), "a")
    f:write(tid, "\n")
    f:close()
    local finished = 0
    for _ in io.lines(os.getenv("BENCH_WRK_DONE")) do finished = finished + 1 end
    if finished >= nthreads then ffi.C.kill(ffi.C.getpid(), 2) end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local walked, failed, body_bytes, first, last = 0, 0, 0, math.huge, 0
  for _, t in ipairs(threads) do
    walked = walked + t:get("answered")
    failed = failed + t:get("bad")
    body_bytes = body_bytes + t:get("bytes")
    first = math.min(first, t:get("t0"))
    last = math.max(last, t:get("t1"))
  end
  local e = summary.errors
  io.write(string.format(
    '{"walked":%d,"non_200":%d,"seconds":%.4f,"body_bytes":%d,"socket_errors":%d}\n',
    walked, failed, last - first, body_bytes, e.connect + e.read + e.write + e.timeout))
end

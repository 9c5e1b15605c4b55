-- wrk script for bench/search.py: every connection rotates through a fixed list of request
-- paths (one per line in the file named by the first script argument), so both sides of the
-- comparison answer exactly the same mix of queries. An optional second argument is sent as
-- the X-TYPESENSE-API-KEY header. At the end it prints one JSON line for search.py to read.
--
--   wrk -t1 -c16 -d20s -s bench/search_rotate.lua http://127.0.0.1:8080 -- paths.txt [api-key]

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(paths, line) end
  end
  if args[2] ~= nil and #args[2] > 0 then
    wrk.headers["X-TYPESENSE-API-KEY"] = args[2]
  end
  -- Threads start at different places so the mix is the same at any moment.
  counter = (id * 7919) % #paths
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter])
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end

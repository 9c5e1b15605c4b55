-- wrk script of the reserve benchmark: every fan posts /booking/reserve once.
--
--   wrk -t T -c C -d D -s bench/reserve_wrk.lua URL -- FANS_FILE OUT_PREFIX T
--
-- FANS_FILE has one line per fan: "<bearer token>\t<JSON body>". Thread k of T sends the
-- lines k+1, k+1+T, ... and writes to OUT_PREFIX.k one line per answer ("409", or
-- "<status>\t<body>"; the 201 bodies are checked against the database afterwards), then
-- "done\t<answered>\t<409s>" once each of its fans was answered, and stops. wrk measures
-- the latency. A thread whose fans are all sent gives its idle connections an empty
-- request, so nothing is sent twice.

local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

local requests = {}
local sent = 0
local answered = 0
local conflicts = 0
local out

function init(args)
   local fans_file, prefix, count = args[1], args[2], tonumber(args[3])
   local line_number = 0
   for line in io.lines(fans_file) do
      if line_number % count == id then
         local token, body = line:match("^([^\t]+)\t(.*)$")
         requests[#requests + 1] = wrk.format("POST", nil, {
            ["Authorization"] = "Bearer " .. token,
            ["Content-Type"] = "application/json",
         }, body)
      end
      line_number = line_number + 1
   end
   out = io.open(prefix .. "." .. id, "w")
end

local verified = false

function request()
   -- wrk calls request() once in thread 0 before the run to check what it returns; that
   -- call must not use up a fan.
   if id == 0 and not verified then
      verified = true
      return requests[1]
   end
   if sent == #requests then
      return ""
   end
   sent = sent + 1
   return requests[sent]
end

function response(status, headers, body)
   answered = answered + 1
   if status == 409 then
      conflicts = conflicts + 1
      out:write("409\n")
   else
      out:write(status, "\t", (body:gsub("[\r\n]", " ")), "\n")
   end
   if answered == #requests then
      out:write("done\t", answered, "\t", conflicts, "\n")
      out:close()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local f = io.open(os.getenv("RESERVE_WRK_SUMMARY"), "w")
   f:write(string.format(
      '{"requests": %d, "duration_us": %d, "timeouts": %d, "connect_errors": %d,'
         .. ' "read_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.errors.timeout, summary.errors.connect,
      summary.errors.read, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
   f:close()
end

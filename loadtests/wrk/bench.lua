-- One wrk script for every benchmark cell; `make bench` (loadtests/bench/) drives it.
--
-- WRK_ENDPOINT  ping | health | sale (the current sale's page) | checkout | purchase | ticket
-- WRK_DATA      records for the endpoint: item ids or codes one a line, or tickets separated
--               by the ASCII record separator (tickets span several lines)
-- WRK_THREADS   the -t given to wrk, so that threads take disjoint records
-- WRK_PREFIX    makes checkout user ids unique per cell
-- WRK_CODES_OUT where checkout writes the codes of the holds it got (for the purchase cells)
-- WRK_ONCE      "1": each record is sent once, then only pings (ingesting a backlog)
-- WRK_SAMPLES_OUT where to write a few answers of each status >= 400, one "status body" a line
--
-- done() prints one line, "WRK_JSON {...}", with the counts by status and the percentiles.

local endpoint = os.getenv("WRK_ENDPOINT") or "health"
local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

local function load_records(path)
   local records = {}
   if not path then
      return records
   end
   local file = assert(io.open(path, "rb"))
   local text = file:read("*a")
   file:close()
   local separator = endpoint == "ticket" and "([^\30]+)" or "([^\n]+)"
   for record in text:gmatch(separator) do
      table.insert(records, record)
   end
   return records
end

function init(args)
   records = load_records(os.getenv("WRK_DATA"))
   stride = tonumber(os.getenv("WRK_THREADS") or "1")
   prefix = os.getenv("WRK_PREFIX") or "bench"
   once = os.getenv("WRK_ONCE") == "1"
   sent = 0
   statuses = {}
   codes = {}
   samples = {}
   health = wrk.format("GET", "/health")
   ping = wrk.format("GET", "/ping")
   sale = wrk.format("GET", "/sales/current")
   dry_run = index == 0
end

-- The n-th record of this thread: threads interleave, so no two take the same record.
local function next_record()
   local position = index + sent * stride
   sent = sent + 1
   return records[(position % #records) + 1], position
end

function request()
   if dry_run then
      -- wrk calls request() once on the first thread before the run, to check what it
      -- returns; that call must not use up a record.
      dry_run = false
      return ping
   end
   if once and index + sent * stride >= #records then
      -- Every record is sent: ping until the caller interrupts wrk. Stopping the thread here
      -- would close connections whose last request the server may not have read yet.
      return ping
   end
   if endpoint == "ping" then
      return ping
   elseif endpoint == "health" then
      return health
   elseif endpoint == "sale" then
      return sale
   elseif endpoint == "checkout" then
      local item, position = next_record()
      local path = "/checkout?user_id=" .. prefix .. "-" .. position .. "&id=" .. item
      return wrk.format("POST", path, nil, "")
   elseif endpoint == "purchase" then
      return wrk.format("POST", "/purchase?code=" .. next_record(), nil, "")
   else
      local headers = { ["Content-Type"] = "text/plain; charset=utf-8" }
      return wrk.format("POST", "/ticket", headers, next_record())
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if endpoint == "checkout" and status == 201 then
      table.insert(codes, body:match('"code"%s*:%s*"([^"]+)"'))
   elseif status >= 400 and statuses[status] <= 3 then
      table.insert(samples, status .. " " .. body:sub(1, 300):gsub("[\r\n]", " "))
   end
end

function done(summary, latency, requests)
   local by_status = {}
   local out = os.getenv("WRK_CODES_OUT")
   out = out and assert(io.open(out, "w"))
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
      end
      if out then
         for _, code in ipairs(thread:get("codes")) do
            out:write(code, "\n")
         end
      end
   end
   if out then
      out:close()
   end
   local samples_out = os.getenv("WRK_SAMPLES_OUT")
   if samples_out then
      local file = assert(io.open(samples_out, "w"))
      for _, thread in ipairs(threads) do
         for _, sample in ipairs(thread:get("samples")) do
            file:write(sample, "\n")
         end
      end
      file:close()
   end
   local parts = {}
   for status, count in pairs(by_status) do
      table.insert(parts, string.format('"%d": %d', status, count))
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "statuses": {%s}, '
         .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
         .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
      summary.requests, summary.duration, table.concat(parts, ", "),
      errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean
   ))
end

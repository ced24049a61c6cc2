-- wrk script of `make bench` (bench/run.py writes the inputs and sets the environment).
--   BENCH_TEMPLATES  requests, three lines each: METHOD, PATH, BODY (empty line for none);
--                    @ID@ is a random assistant of the bench organisation, @N@ a random number,
--                    @U@ a token unique to this request (unique GraphQL texts for the caches)
--   BENCH_IDS        the organisation's assistant ids, one a line
--   BENCH_KEY        its API key (sent as `Authorization: Bearer …`)
--   BENCH_SALT       makes @U@ unique across runs
--   BENCH_IF_NONE_MATCH  (optional) sent as `If-None-Match`; a 304 is then the good answer
--   BENCH_IDEMPOTENCY_KEY  (optional, any value) each request carries an `Idempotency-Key` of
--                    its own (the salt, thread and counter: never a replay)
-- Templates are used in turn; a response that is not 200, or whose body holds `"errors"`,
-- counts as bad. done() prints one line `BENCH {json}` for run.py.

local templates = {}
local lines = {}
for line in io.lines(os.getenv("BENCH_TEMPLATES")) do
  lines[#lines + 1] = line
end
for i = 1, #lines - 2, 3 do
  templates[#templates + 1] = { method = lines[i], path = lines[i + 1], body = lines[i + 2] }
end

local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do
  if line ~= "" then ids[#ids + 1] = line end
end

local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
  ["Content-Type"] = "application/json",
}
local salt = os.getenv("BENCH_SALT") or "s"
local if_none_match = os.getenv("BENCH_IF_NONE_MATCH")
local idempotency_key = os.getenv("BENCH_IDEMPOTENCY_KEY")
local good = 200
if if_none_match then
  headers["If-None-Match"] = if_none_match
  good = 304
end
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  counter = 0
  answered = 0
  bad = 0
  first_bad = ""
end

function request()
  counter = counter + 1
  local t = templates[(counter - 1) % #templates + 1]
  local id = ids[math.random(#ids)]
  local path = t.path:gsub("@ID@", id)
  local body = nil
  if t.body ~= "" then
    local u = salt .. "t" .. tid .. "n" .. counter
    body = t.body:gsub("@ID@", id):gsub("@N@", tostring(math.random(1000000))):gsub("@U@", u)
  end
  if idempotency_key then
    headers["Idempotency-Key"] = salt .. "k" .. tid .. "n" .. counter
  end
  return wrk.format(t.method, path, headers, body)
end

function response(status, hdrs, body)
  answered = answered + 1
  if status ~= good or (body ~= nil and body:find('"errors"', 1, true)) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 300):gsub("\n", " ")
    end
  end
end

function done(summary, latency, requests)
  local nbad, sample = 0, ""
  for _, t in ipairs(threads) do
    nbad = nbad + t:get("bad")
    if sample == "" then sample = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"socket_errors": %d, "bad": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, nbad))
  if sample ~= "" then io.write("BENCHBAD " .. sample .. "\n") end
end

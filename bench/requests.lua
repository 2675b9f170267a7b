-- wrk script of the callgate benchmark: rotates through pre-signed Sinch callbacks.
--
-- The requests are generated (and signed, with a fresh x-timestamp) by bench/run.py
-- right before each run, as a Lua file returning { {body = "...", headers = {...}}, ... };
-- its path is in the environment variable CALLGATE_BENCH_REQUESTS.  Every request is
-- formatted once per wrk thread in init(); request() only hands out the next one, so
-- the client costs next to nothing per request.

local data_path = os.getenv("CALLGATE_BENCH_REQUESTS")
if data_path == nil or data_path == "" then
  error("set CALLGATE_BENCH_REQUESTS to the Lua data file written by bench/run.py")
end

local requests = {}
local count = 0
local next_index = 0

function init(args)
  local data = dofile(data_path)
  for i, r in ipairs(data) do
    requests[i] = wrk.format("POST", wrk.path, r.headers, r.body)
  end
  count = #requests
  if count == 0 then
    error(data_path .. " holds no requests")
  end
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

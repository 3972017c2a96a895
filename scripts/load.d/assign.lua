-- One random user into one random leaf group per request (PATCH assign-users). GROUP_LO..GROUP_HI are the leaf
-- groups, USER_LO..USER_HI the users; with SAME_GROUP set every request goes to GROUP_LO.
local glo, ghi = tonumber(os.getenv("GROUP_LO")), tonumber(os.getenv("GROUP_HI"))
local ulo, uhi = tonumber(os.getenv("USER_LO")), tonumber(os.getenv("USER_HI"))
local same = os.getenv("SAME_GROUP") ~= nil
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
local counter = 0
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end
request = function()
  local g = same and glo or math.random(glo, ghi)
  local u = math.random(ulo, uhi)
  return wrk.format(nil, "/api/v1/groups/" .. g .. "/assign-users/", nil, '{"users": [' .. u .. ']}')
end
local bad = 0
response = function(status, headers, body) if status ~= 200 then bad = bad + 1 end end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50=%.2fms p99=%.2fms non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

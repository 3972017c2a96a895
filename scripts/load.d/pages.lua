-- GET of PATH with `&page=N` for a random N in 2..PAGES (with the bearer TOKEN when set); prints one RESULT line.
wrk.method = "GET"
if os.getenv("TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
local path, pages = os.getenv("REQ_PATH"), tonumber(os.getenv("PAGES"))
request = function()
  return wrk.format(nil, path .. "&page=" .. math.random(2, pages))
end
dofile("scripts/load.d/report.lua")

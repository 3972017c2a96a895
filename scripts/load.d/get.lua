-- GET of PATH (with the bearer TOKEN when set); prints one RESULT line.
wrk.method = "GET"
if os.getenv("TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
wrk.path = os.getenv("REQ_PATH")
dofile("scripts/load.d/report.lua")

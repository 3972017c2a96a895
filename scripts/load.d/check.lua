-- POST of a check body to PATH (with the bearer TOKEN when set); prints one RESULT line.
wrk.method = "POST"
if os.getenv("TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
wrk.headers["Content-Type"] = "application/json"
wrk.path = os.getenv("REQ_PATH")
wrk.body = os.getenv("BODY")
dofile("scripts/load.d/report.lua")

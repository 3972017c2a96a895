-- Forward-auth as a proxy asks it: GET /api/v1/auth/forward/ with the user's TOKEN and the original request in
-- X-Forwarded-Method / X-Forwarded-Uri (URI); prints one RESULT line.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["X-Forwarded-Method"] = "GET"
wrk.headers["X-Forwarded-Uri"] = os.getenv("URI")
wrk.path = "/api/v1/auth/forward/"
dofile("scripts/load.d/report.lua")

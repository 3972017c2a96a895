-- POST of a check body to PATH (with the bearer TOKEN when set); prints one RESULT line.
wrk.method = "POST"
if os.getenv("TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
wrk.headers["Content-Type"] = "application/json"
wrk.path = os.getenv("REQ_PATH")
wrk.body = os.getenv("BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50=%.2fms p99=%.2fms non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

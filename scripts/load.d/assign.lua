-- One random user into one random leaf group per request (PATCH assign-users). GROUP_LO..GROUP_HI are the leaf
-- groups, USER_LO..USER_HI the users; with SAME_GROUP set every request goes to GROUP_LO.
local glo, ghi = tonumber(os.getenv("GROUP_LO")), tonumber(os.getenv("GROUP_HI"))
local ulo, uhi = tonumber(os.getenv("USER_LO")), tonumber(os.getenv("USER_HI"))
local same = os.getenv("SAME_GROUP") ~= nil
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end
request = function()
  local g = same and glo or math.random(glo, ghi)
  local u = math.random(ulo, uhi)
  return wrk.format(nil, "/api/v1/groups/" .. g .. "/assign-users/", nil, '{"users": [' .. u .. ']}')
end
dofile("scripts/load.d/report.lua")

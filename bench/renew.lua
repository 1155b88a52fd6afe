-- renew.lua: wrk script for the renew scenario. Each request is
--   PUT /v1/services/<id>/renew
-- cycling through the service ids in the file named by the IDS_FILE
-- environment variable (one id a line, written by regload during the
-- 100k registration). Responses other than 200 show up in wrk's
-- "Non-2xx or 3xx responses" line, which bench/run.sh checks.
local ids = {}
local i = 0

function init(args)
  local path = os.getenv("IDS_FILE")
  local f = assert(io.open(path, "r"), "cannot open IDS_FILE " .. tostring(path))
  for line in f:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  f:close()
  assert(#ids > 0, "no ids in " .. path)
end

function request()
  i = i % #ids + 1
  return wrk.format("PUT", "/v1/services/" .. ids[i] .. "/renew")
end

-- POST /api/v1/customers/<id>/consents for a random seeded customer, alternating
-- granted true and false on each connection's successive requests, so grants and
-- withdrawals/refusals are recorded in equal numbers. Each one is a ledger event, a
-- signed receipt, the new current state and an audit entry (201 Created).
-- args: a file of seeded customer ids (one per line), the purpose (default marketing.sms).

local ids = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(ids, line)
    end
  end
  purpose = args[2] or "marketing.sms"
  math.randomseed(os.time() * 1000 + thread_no * 7)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local granted = (counter % 2 == 1) and "true" or "false"
  local body = string.format('{"purpose":"%s","granted":%s,"source":"bench"}', purpose, granted)
  local path = string.format("/api/v1/customers/%s/consents", ids[math.random(1, #ids)])
  return wrk.format("POST", path, nil, body)
end

function check(status, body)
  return status == 201
end

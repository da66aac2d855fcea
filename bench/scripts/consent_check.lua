-- GET /api/v1/consent-check for a random seeded customer (the single check).
-- args: a file of seeded customer ids (one per line), the purpose (default marketing.sms).
-- A 200 without an "allowed" field is counted as a miss.

local ids = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(ids, line)
    end
  end
  purpose = args[2] or "marketing.sms"
  math.randomseed(os.time() * 1000 + thread_no)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
end

function request()
  local path = string.format("/api/v1/consent-check?customer_id=%s&purpose=%s",
                             ids[math.random(1, #ids)], purpose)
  return wrk.format("GET", path)
end

function check(status, body)
  return status == 200 and string.find(body, '"allowed"', 1, true) ~= nil
end

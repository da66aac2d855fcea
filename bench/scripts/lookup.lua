-- POST /api/v1/customers/lookup for a random seeded email (seed<i>@example.com,
-- 0 <= i < n). A 200 with no match is counted as a miss. args: n.

function init(args)
  n = tonumber(args[1])
  math.randomseed(os.time() * 1000 + thread_no)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = string.format('{"email":"seed%d@example.com"}', math.random(0, n - 1))
  return wrk.format("POST", "/api/v1/customers/lookup", nil, body)
end

function check(status, body)
  return status == 200 and string.find(body, '"id"', 1, true) ~= nil
end

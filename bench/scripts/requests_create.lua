-- POST /api/v1/requests (DSAR create): an access request for a random imported customer
-- (seed<i>@example.com, 0 <= i < n), not yet verified, so each one also queues the
-- verification mail in its transaction (201 Created). args: n.

function init(args)
  n = tonumber(args[1])
  math.randomseed(os.time() * 1000 + thread_no * 13)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = string.format('{"type":"access","email":"seed%d@example.com"}',
                             math.random(0, n - 1))
  return wrk.format("POST", "/api/v1/requests", nil, body)
end

function check(status, body)
  return status == 201
end

-- POST /api/v1/requests: an access request still to be verified, for a random seeded
-- customer, by customer id or by email (each a request row, its history, a verification
-- token, the verification mail and two deadline reminders as outbox jobs, the customer's
-- last activity and an audit entry; 201 Created). The demo key has requests:manage, so
-- the per-subject intake limit does not apply.
-- args: a file of seeded customer ids (one per line), "id" or "email", and for "email"
-- the seeded emails' prefix and count (<prefix><i>@example.com).

local ids = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(ids, line)
    end
  end
  mode = args[2] or "id"
  prefix = args[3] or "seed"
  count = tonumber(args[4] or "1")
  math.randomseed(os.time() * 1000 + thread_no * 13)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body
  if mode == "email" then
    body = string.format('{"type":"access","email":"%s%d@example.com"}', prefix,
                         math.random(0, count - 1))
  else
    body = string.format('{"type":"access","customer_id":"%s"}', ids[math.random(1, #ids)])
  end
  return wrk.format("POST", "/api/v1/requests", nil, body)
end

function check(status, body)
  return status == 201
end

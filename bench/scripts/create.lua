-- POST /api/v1/customers with a new email on every request (201 Created; a 200 would
-- mean an update and is counted as a miss). args: a tag unique to this run.

local counter = 0

function init(args)
  tag = args[1] or "run"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"email":"c-%s-%d-%d@example.com","first_name":"Ada","last_name":"Lovelace",' ..
    '"phone":"+49151%08d","address":{"city":"Berlin","country":"DE"}}',
    tag, thread_no, counter, (thread_no * 7919 + counter) % 100000000)
  return wrk.format("POST", "/api/v1/customers", nil, body)
end

function check(status, body)
  return status == 201
end

-- GET /api/v1/ping: no auth, no database; the baseline every ratio is taken against.

function request()
  return wrk.format("GET", "/api/v1/ping")
end

function check(status, body)
  return status == 200
end

# A CI step written for k6's --out json=FILE: run with `jq -n -f out-json.jq FILE`.
# Counts requests by status and takes the slowest successful response, from the points.
[inputs | select(.type == "Point")] as $points
| {
    requests: [$points[] | select(.metric == "http_reqs")] | length,
    ok: [$points[] | select(.metric == "http_reqs" and .data.tags.status == "200")] | length,
    slowest_ok_ms: [$points[] | select(.metric == "http_req_duration" and .data.tags.expected_response == "true") | .data.value] | max,
    failed: [$points[] | select(.metric == "http_req_failed") | .data.value] | add,
    checks_passed: [$points[] | select(.metric == "checks") | .data.value] | add,
    data_received: [$points[] | select(.metric == "data_received") | .data.value] | add,
    iterations: [$points[] | select(.metric == "iterations") | .data.value] | add
  }

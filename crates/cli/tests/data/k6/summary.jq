# A CI step written for k6's --summary-export file:
#   jq -f summary.jq summary.json
# k6 writes a threshold's value as true when it FAILED.
.metrics as $m
| {
    requests: $m.http_reqs.count,
    rps: $m.http_reqs.rate,
    p95_ms: $m.http_req_duration["p(95)"],
    p95_ok_ms: $m["http_req_duration{expected_response:true}"]["p(95)"],
    waiting_p95_ms: $m.http_req_waiting["p(95)"],
    failed_rate: $m.http_req_failed.value,
    checks_rate: $m.checks.value,
    iterations: $m.iterations.count,
    vus_max: $m.vus_max.value,
    data_received: $m.data_received.count,
    checks: [.root_group.checks | to_entries[] | .value | {name, id, passes, fails}],
    failed_thresholds: [
      $m | to_entries[] | select(.value.thresholds != null)
      | .key as $metric | .value.thresholds | to_entries[] | select(.value) | "\($metric): \(.key)"
    ],
    thresholds: [$m | to_entries[] | select(.value.thresholds != null) | .value.thresholds | keys[]] | length
  }

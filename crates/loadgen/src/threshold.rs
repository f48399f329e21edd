//! Thresholds in k6's grammar: `http_req_duration: p(95)<200`,
//! `http_req_failed: rate<0.01`, `http_reqs{name:/keys}: count>=100`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::histogram::TrendStat;

/// The kind of a metric, as k6 types them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A sum (`count`, `rate` per second).
    Counter,
    /// A ratio of non-zero samples (`rate`).
    Rate,
    /// A distribution (`avg`, `min`, `med`, `max`, `p(N)`).
    Trend,
    /// A value (`value`).
    Gauge,
}

impl MetricType {
    /// The string k6 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Rate => "rate",
            MetricType::Trend => "trend",
            MetricType::Gauge => "gauge",
        }
    }
}

/// The tags a request's counts can be filtered by in a threshold.
const REQUEST_TAGS: &[&str] = &[
    "name",
    "status",
    "method",
    "cache_status",
    "group",
    "scenario",
];

/// Every metric Atlas reports: name, type, what it contains (k6's `contains`),
/// and the tags it can be filtered by in a threshold.
pub const METRICS: &[(&str, MetricType, &str, &[&str])] = &[
    ("http_reqs", MetricType::Counter, "default", REQUEST_TAGS),
    ("http_req_failed", MetricType::Rate, "default", REQUEST_TAGS),
    (
        "http_req_duration",
        MetricType::Trend,
        "time",
        &[
            "name",
            "expected_response",
            "status",
            "method",
            "cache_status",
            "group",
            "scenario",
        ],
    ),
    ("http_req_blocked", MetricType::Trend, "time", &[]),
    ("http_req_connecting", MetricType::Trend, "time", &[]),
    ("http_req_tls_handshaking", MetricType::Trend, "time", &[]),
    ("http_req_sending", MetricType::Trend, "time", &[]),
    ("http_req_waiting", MetricType::Trend, "time", &[]),
    ("http_req_receiving", MetricType::Trend, "time", &[]),
    ("http_req_service_time", MetricType::Trend, "time", &[]),
    ("schedule_lag", MetricType::Trend, "time", &[]),
    ("iterations", MetricType::Counter, "default", &[]),
    ("iteration_duration", MetricType::Trend, "time", &[]),
    ("group_duration", MetricType::Trend, "time", &["group"]),
    ("dropped_iterations", MetricType::Counter, "default", &[]),
    ("data_sent", MetricType::Counter, "data", &[]),
    ("data_received", MetricType::Counter, "data", &[]),
    ("checks", MetricType::Rate, "default", &[]),
    (
        "cache_hit",
        MetricType::Rate,
        "default",
        &["name", "method", "group", "scenario"],
    ),
    ("vus", MetricType::Gauge, "default", &[]),
    ("vus_max", MetricType::Gauge, "default", &[]),
];

/// A metric, optionally narrowed to one tag value: `http_req_duration{name:/keys}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricRef {
    /// The metric's name.
    pub name: String,
    /// `(key, value)` of the tag filter.
    pub tag: Option<(String, String)>,
}

impl MetricRef {
    /// Parses `name` or `name{key:value}` and checks it against [`METRICS`].
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let (name, tag) = match s.split_once('{') {
            None => (s, None),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("{s:?}: a tag filter ends with '}}'"))?;
                let (k, v) = inner
                    .split_once(':')
                    .ok_or_else(|| format!("{s:?}: a tag filter is {{key:value}}"))?;
                (
                    name.trim(),
                    Some((k.trim().to_string(), v.trim().to_string())),
                )
            }
        };
        let (_, _, _, tags) = METRICS.iter().find(|m| m.0 == name).ok_or_else(|| {
            let known: Vec<&str> = METRICS.iter().map(|m| m.0).collect();
            format!("unknown metric {name:?} (known: {})", known.join(", "))
        })?;
        if let Some((k, v)) = &tag {
            // a request's own tags (`tags = { kind = "api" }`) are checked
            // against the requests when the test is built
            let custom = tags.contains(&"name") && !crate::flow::is_system_tag(k);
            if !tags.contains(&k.as_str()) && !custom {
                return Err(if tags.is_empty() {
                    format!("metric {name} has no tags to filter by")
                } else {
                    format!(
                        "metric {name} has no tag {k:?} (it has: {})",
                        tags.join(", ")
                    )
                });
            }
            if k == "expected_response" && v != "true" && v != "false" {
                return Err(format!("expected_response is true or false, not {v:?}"));
            }
        }
        Ok(MetricRef {
            name: name.to_string(),
            tag,
        })
    }

    /// The metric's type.
    pub fn metric_type(&self) -> MetricType {
        METRICS
            .iter()
            .find(|m| m.0 == self.name)
            .map(|m| m.1)
            .expect("MetricRef is only built for known metrics")
    }
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            None => f.write_str(&self.name),
            Some((k, v)) => write!(f, "{}{{{k}:{v}}}", self.name),
        }
    }
}

/// The statistic a threshold compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregation {
    /// `count` of a counter.
    Count,
    /// `rate`: per second for a counter, ratio for a rate metric.
    Rate,
    /// `value` of a gauge.
    Value,
    /// A trend statistic.
    Trend(TrendStat),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `===`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// A threshold as written in a scenario file: a bare expression, or k6's
/// object form with `abortOnFail` and `delayAbortEval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ThresholdSpec {
    /// `"p(95)<200"`
    Expr(String),
    /// `{ threshold = "p(95)<200", abortOnFail = true, delayAbortEval = "10s" }`
    Full {
        /// The expression.
        threshold: String,
        /// Stop the test as soon as the threshold fails.
        #[serde(rename = "abortOnFail", default)]
        abort_on_fail: bool,
        /// Do not abort before this much of the test has run.
        #[serde(
            rename = "delayAbortEval",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        delay_abort_eval: Option<String>,
    },
}

/// A parsed, validated threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The metric it applies to.
    pub metric: MetricRef,
    /// The expression as k6 prints it (`p(95)<200`).
    pub expr: String,
    /// What it compares.
    pub aggregation: Aggregation,
    /// How.
    pub op: Op,
    /// With what.
    pub value: f64,
    /// Abort the test when it fails during the run.
    pub abort_on_fail: bool,
    /// Not before this much of the test has run.
    pub delay_abort_eval: Duration,
}

impl Threshold {
    /// Parses one expression for a metric (`"p(95)<200"` for `http_req_duration`).
    ///
    /// # Errors
    /// [`Error::Threshold`] naming the expression when the metric is unknown,
    /// the statistic does not apply to the metric's type, or the syntax is wrong.
    pub fn parse(metric: &str, expr: &str) -> Result<Self> {
        let whole = format!("{metric}: {expr}");
        let err = |message: String| Error::Threshold {
            expr: whole.clone(),
            message,
        };
        let metric = MetricRef::parse(metric).map_err(err)?;
        let e = expr.trim();
        let op_at = e
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| err("expected STAT OP NUMBER, e.g. p(95)<200".into()))?;
        let (stat, rest) = e.split_at(op_at);
        let (op, num) = if let Some(n) = rest.strip_prefix("===") {
            (Op::Eq, n)
        } else if let Some(n) = rest.strip_prefix("==") {
            (Op::Eq, n)
        } else if let Some(n) = rest.strip_prefix("!=") {
            (Op::Ne, n)
        } else if let Some(n) = rest.strip_prefix("<=") {
            (Op::Le, n)
        } else if let Some(n) = rest.strip_prefix(">=") {
            (Op::Ge, n)
        } else if let Some(n) = rest.strip_prefix('<') {
            (Op::Lt, n)
        } else if let Some(n) = rest.strip_prefix('>') {
            (Op::Gt, n)
        } else {
            return Err(err(format!("unknown operator in {rest:?}")));
        };
        let value: f64 = num
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err(format!("{:?} is not a number", num.trim())))?;
        let stat = stat.trim();
        let aggregation = parse_stat(stat).ok_or_else(|| {
            err(format!(
                "unknown statistic {stat:?} (avg, min, med, max, p(N), count, rate, value)"
            ))
        })?;
        let mt = metric.metric_type();
        let fits = matches!(
            (mt, aggregation),
            (MetricType::Counter, Aggregation::Count | Aggregation::Rate)
                | (MetricType::Rate, Aggregation::Rate)
                | (MetricType::Gauge, Aggregation::Value)
                | (MetricType::Trend, Aggregation::Trend(_))
        );
        if !fits {
            return Err(err(format!(
                "{stat} does not apply to {} metric {}",
                mt.as_str(),
                metric.name
            )));
        }
        Ok(Threshold {
            metric,
            expr: format!("{stat}{}{}", op_str(op, rest), num.trim()),
            aggregation,
            op,
            value,
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
        })
    }

    /// Parses the one-line form used on the command line:
    /// `METRIC: EXPR`, optionally followed by `, abortOnFail` and
    /// `, delayAbortEval=10s` (k6's options of the object form).
    pub fn parse_line(line: &str) -> Result<Self> {
        let bad = |message: &str| Error::Threshold {
            expr: line.to_string(),
            message: message.to_string(),
        };
        // the metric ends at the first ':' after any '{...}' tag filter
        let search_from = line.find('}').map_or(0, |i| i + 1);
        let colon = line[search_from..]
            .find(':')
            .map(|i| i + search_from)
            .ok_or_else(|| bad("expected METRIC: EXPR, e.g. 'http_req_duration: p(95)<200'"))?;
        let (metric, rest) = (&line[..colon], &line[colon + 1..]);
        let mut parts = rest.split(',');
        let expr = parts.next().unwrap_or("");
        let mut t = Threshold::parse(metric, expr)?;
        for opt in parts {
            match opt.trim().split_once('=') {
                None if opt.trim() == "abortOnFail" => t.abort_on_fail = true,
                Some(("delayAbortEval", d)) => {
                    t.delay_abort_eval = atlas_vocab::duration::parse(d)
                        .map_err(|m| bad(&format!("delayAbortEval: {m}")))?;
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown option {:?} (abortOnFail, delayAbortEval=DURATION)",
                        opt.trim()
                    )))
                }
            }
        }
        if !t.delay_abort_eval.is_zero() && !t.abort_on_fail {
            return Err(bad(
                "delayAbortEval only delays abortOnFail; add abortOnFail",
            ));
        }
        Ok(t)
    }

    /// Builds thresholds from a scenario's `metric = [spec, ...]` entry.
    pub fn from_spec(metric: &str, spec: &ThresholdSpec) -> Result<Self> {
        match spec {
            ThresholdSpec::Expr(e) => Threshold::parse(metric, e),
            ThresholdSpec::Full {
                threshold,
                abort_on_fail,
                delay_abort_eval,
            } => {
                let mut t = Threshold::parse(metric, threshold)?;
                t.abort_on_fail = *abort_on_fail;
                if let Some(d) = delay_abort_eval {
                    t.delay_abort_eval =
                        atlas_vocab::duration::parse(d).map_err(|m| Error::Threshold {
                            expr: format!("{metric}: {threshold}"),
                            message: format!("delayAbortEval: {m}"),
                        })?;
                }
                Ok(t)
            }
        }
    }

    /// The spec this threshold serializes back to.
    pub fn to_spec(&self) -> ThresholdSpec {
        if self.abort_on_fail || !self.delay_abort_eval.is_zero() {
            ThresholdSpec::Full {
                threshold: self.expr.clone(),
                abort_on_fail: self.abort_on_fail,
                delay_abort_eval: (!self.delay_abort_eval.is_zero())
                    .then(|| humantime::format_duration(self.delay_abort_eval).to_string()),
            }
        } else {
            ThresholdSpec::Expr(self.expr.clone())
        }
    }

    /// Evaluates the threshold on a source of metrics: a finished
    /// [`RunResult`](crate::RunResult), a live snapshot, or any figures.
    pub fn evaluate(&self, source: &(impl MetricSource + ?Sized)) -> ThresholdOutcome {
        let actual = source.metric_value(&self.metric, self.aggregation);
        let ok = actual.is_some_and(|a| self.op.holds(a, self.value));
        ThresholdOutcome {
            metric: self.metric.to_string(),
            expr: self.expr.clone(),
            ok,
            actual,
        }
    }
}

fn op_str(op: Op, rest: &str) -> &'static str {
    match op {
        Op::Eq if rest.starts_with("===") => "===",
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Le => "<=",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Gt => ">",
    }
}

fn parse_stat(s: &str) -> Option<Aggregation> {
    Some(match s {
        "count" => Aggregation::Count,
        "rate" => Aggregation::Rate,
        "value" => Aggregation::Value,
        "avg" => Aggregation::Trend(TrendStat::Avg),
        "min" => Aggregation::Trend(TrendStat::Min),
        "max" => Aggregation::Trend(TrendStat::Max),
        "med" => Aggregation::Trend(TrendStat::Med),
        _ => {
            let p: f64 = s
                .strip_prefix("p(")?
                .strip_suffix(')')?
                .trim()
                .parse()
                .ok()?;
            if !(0.0..=100.0).contains(&p) {
                return None;
            }
            Aggregation::Trend(TrendStat::Percentile(p))
        }
    })
}

/// Thresholds written one per line (`http_req_duration: p(95)<200`, as
/// `--threshold` takes them), grouped by metric in the order first seen:
/// the shape a scenario's `[thresholds]` and a result carry.
///
/// # Errors
/// [`Error::Threshold`] naming the first bad line.
pub fn threshold_specs(lines: &[String]) -> Result<Vec<(String, Vec<ThresholdSpec>)>> {
    let mut specs: Vec<(String, Vec<ThresholdSpec>)> = Vec::new();
    for line in lines {
        let t = Threshold::parse_line(line)?;
        let key = t.metric.to_string();
        match specs.iter_mut().find(|(m, _)| *m == key) {
            Some((_, v)) => v.push(t.to_spec()),
            None => specs.push((key, vec![t.to_spec()])),
        }
    }
    Ok(specs)
}

/// Where thresholds read their values, as k6's threshold engine reads a
/// metric's sink: a finished result and a live snapshot of a running test
/// both implement it, so one engine judges both (and a test can judge
/// plain figures).
pub trait MetricSource {
    /// The value of `metric`'s statistic `agg`, or `None` when the metric
    /// has no samples (a threshold on it then fails).
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64>;
}

/// The verdict of one threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The metric, with its tag filter (`http_req_duration{name:/keys}`).
    pub metric: String,
    /// The expression (`p(95)<200`).
    pub expr: String,
    /// Whether it held. A metric without samples never holds.
    pub ok: bool,
    /// The measured value; `None` when the metric had no samples.
    pub actual: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_gate_thresholds() {
        for line in [
            "http_req_duration: p(95)<200",
            "http_req_failed: rate<0.01",
            "http_reqs: rate>=500",
            "http_reqs: count>=29700",
            "cache_hit: rate>=0.98",
            "http_req_duration{name:/keys}: p(99)<300",
            "http_req_duration{expected_response:true}: p(99.9) <= 1000",
            "checks: rate==1",
            "vus_max: value>0",
        ] {
            let t = Threshold::parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(!t.abort_on_fail);
        }
        let t = Threshold::parse_line("http_req_duration{name:/keys}: p(99)<300").unwrap();
        assert_eq!(t.metric.tag, Some(("name".into(), "/keys".into())));
        assert_eq!(
            t.aggregation,
            Aggregation::Trend(TrendStat::Percentile(99.0))
        );
        assert_eq!(t.op, Op::Lt);
        assert_eq!(t.value, 300.0);
        assert_eq!(t.expr, "p(99)<300");
        let t = Threshold::parse_line("http_req_failed: rate<0.05, abortOnFail").unwrap();
        assert!(t.abort_on_fail);
        assert_eq!(t.delay_abort_eval, Duration::ZERO);
        let t =
            Threshold::parse_line("http_req_failed: rate<0.05, abortOnFail, delayAbortEval=10s")
                .unwrap();
        assert!(t.abort_on_fail);
        assert_eq!(t.delay_abort_eval, Duration::from_secs(10));
    }

    #[test]
    fn malformed_expressions_name_the_problem() {
        let cases = [
            ("http_req_duration p(95)<200", "METRIC: EXPR"),
            ("http_req_durtion: p(95)<200", "unknown metric"),
            ("http_req_duration: p(95)~200", "expected STAT OP NUMBER"),
            ("http_req_duration: p(95)<abc", "not a number"),
            ("http_req_duration: p(101)<200", "unknown statistic"),
            ("http_reqs: p(95)<200", "does not apply to counter"),
            ("http_req_failed: count<3", "does not apply to rate"),
            // a tag Atlas sets, on a metric that does not carry it (a
            // request's own tag is checked against the requests at build)
            ("cache_hit{status:200}: rate>0.9", "no tag \"status\""),
            ("data_sent{name:/}: count>0", "no tags"),
            ("http_req_duration{name:/: p(95)<200", "ends with"),
            ("http_req_failed: rate<0.01, abortOnFial", "unknown option"),
            (
                "http_req_failed: rate<0.01, abortOnFail, delayAbortEval=soon",
                "delayAbortEval",
            ),
            (
                "http_req_failed: rate<0.01, delayAbortEval=10s",
                "add abortOnFail",
            ),
        ];
        for (line, want) in cases {
            let e = Threshold::parse_line(line).expect_err(line).to_string();
            assert!(
                e.contains(want),
                "{line}: error {e:?} should mention {want:?}"
            );
            assert!(e.contains("invalid threshold"), "{e}");
        }
    }

    #[test]
    fn spec_round_trip() {
        let spec = ThresholdSpec::Full {
            threshold: "rate<0.01".into(),
            abort_on_fail: true,
            delay_abort_eval: Some("10s".into()),
        };
        let t = Threshold::from_spec("http_req_failed", &spec).unwrap();
        assert_eq!(t.delay_abort_eval, Duration::from_secs(10));
        assert_eq!(t.to_spec(), spec);
    }
}

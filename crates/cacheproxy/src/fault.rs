//! The fault layer: faults injected between the cache and the origin, each
//! decided per upstream request from a seeded sequence of draws, so a
//! keep-alive client sees them as often as a client that reconnects (a
//! per-connection toxic, as Toxiproxy's, never reaches a pooled connection
//! twice). [`decide`] is the pure decision; the proxy applies it in its
//! upstream path.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use atlas_vocab::duration::option as opt_duration_str;

/// What a fault does to the upstream request it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The origin refuses the connection: the request fails at once, as a
    /// connection refused does (502, or a stale copy).
    UpstreamDown,
    /// The origin answers `latency` (± `jitter`) later; counts against
    /// `upstream_timeout`.
    Latency,
    /// The origin answers with `status` (default 503) instead of its own.
    ErrorStatus,
    /// The origin accepts the request and never answers: the request waits
    /// for `upstream_timeout` (504, or a stale copy).
    Blackhole,
    /// The connection is reset after the response head, before the body:
    /// the client gets a stale copy or 502 (a body already on its way to a
    /// client would be cut, as `truncate` does).
    Reset,
    /// The body arrives at `bytes_per_sec`.
    SlowBody,
    /// The connection is cut after `after_bytes` of the body; nothing
    /// truncated is stored.
    Truncate,
}

impl FaultKind {
    /// The kind as files, logs and metrics spell it (`error-status`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::UpstreamDown => "upstream-down",
            FaultKind::Latency => "latency",
            FaultKind::ErrorStatus => "error-status",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Reset => "reset",
            FaultKind::SlowBody => "slow-body",
            FaultKind::Truncate => "truncate",
        }
    }
}

/// One fault rule: a kind, its parameters, which upstream requests it
/// may hit, and how often.
///
/// ```toml
/// [[fault.rules]]
/// kind = "error-status"
/// status = 503
/// percent = 10
/// path_prefix = "/api"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// Percentage of the matching upstream requests it hits (default 100).
    #[serde(default = "all")]
    pub percent: f64,
    /// Only requests whose path starts with this (default: every path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only requests of this method (default: every method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `latency`: how much later the origin answers.
    #[serde(
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// `latency`: up to this much more or less, drawn per request.
    #[serde(
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// `error-status`: the status answered (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `slow-body`: the body's pace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// `truncate`: the body's bytes that get through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
}

fn all() -> f64 {
    100.0
}

impl Fault {
    /// A rule of `kind` that hits every upstream request, no parameters.
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            percent: 100.0,
            path_prefix: None,
            method: None,
            latency: None,
            jitter: None,
            status: None,
            bytes_per_sec: None,
            after_bytes: None,
        }
    }

    /// Checks the rule; the error names the field, as `fault.rules[i].FIELD`
    /// takes it, and what is wrong.
    ///
    /// # Errors
    /// `(field, message)`: a percentage outside 0–100, a parameter the kind
    /// needs and lacks, one it does not take, a status or method that is
    /// not one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let kind = self.kind.as_str();
        if !(0.0..=100.0).contains(&self.percent) {
            return Err((
                "percent",
                format!("{} is not a percentage (0 to 100)", self.percent),
            ));
        }
        if let Some(m) = &self.method {
            Method::from_bytes(m.as_bytes())
                .map_err(|_| ("method", format!("{m:?} is not an HTTP method")))?;
        }
        if self
            .path_prefix
            .as_deref()
            .is_some_and(|p| !p.starts_with('/'))
        {
            return Err(("path_prefix", "must start with /".into()));
        }
        // each parameter belongs to one kind: needed there, refused elsewhere
        let owned = |owner: FaultKind, given: bool, field: &'static str, needs: &str| match (
            self.kind == owner,
            given,
        ) {
            (true, false) => Err((field, format!("kind = \"{kind}\" needs {needs}"))),
            (false, true) => Err((field, format!("kind = \"{kind}\" takes no {field}"))),
            _ => Ok(()),
        };
        owned(
            FaultKind::Latency,
            self.latency.is_some(),
            "latency",
            "a latency (\"300ms\")",
        )?;
        if self.kind != FaultKind::Latency && self.jitter.is_some() {
            return Err(("jitter", format!("kind = \"{kind}\" takes no jitter")));
        }
        let pace = "a pace of at least 1 byte a second";
        owned(
            FaultKind::SlowBody,
            self.bytes_per_sec.is_some(),
            "bytes_per_sec",
            pace,
        )?;
        if self.bytes_per_sec == Some(0) {
            return Err(("bytes_per_sec", format!("kind = \"{kind}\" needs {pace}")));
        }
        owned(
            FaultKind::Truncate,
            self.after_bytes.is_some(),
            "after_bytes",
            "after_bytes",
        )?;
        match (self.kind == FaultKind::ErrorStatus, self.status) {
            (true, Some(s)) if !(100..=599).contains(&s) => {
                return Err(("status", format!("{s} is not an HTTP status")))
            }
            (false, Some(_)) => {
                return Err(("status", format!("kind = \"{kind}\" takes no status")))
            }
            _ => {}
        }
        Ok(())
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// What happens instead of the origin's own answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connection is refused.
    Refused,
    /// No answer until the upstream timeout.
    Blackhole,
    /// The origin's answer with this status instead of its own.
    Status(u16),
}

/// What the faults that hit do to the response body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyFaults {
    /// The body's bytes that get through before the connection fails (0
    /// for `reset`; the least of the rules that hit).
    pub cut: Option<u64>,
    /// The body's pace in bytes a second (the slowest of the rules).
    pub pace: Option<u64>,
}

impl BodyFaults {
    /// No fault acts on the body.
    pub fn is_none(&self) -> bool {
        self.cut.is_none() && self.pace.is_none()
    }
}

/// The faults one upstream request gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Waited before the request goes upstream (the sum of the latency
    /// faults that hit).
    pub delay: Duration,
    /// The strongest outcome among the faults that hit: refused, then
    /// blackhole, then a status.
    pub outcome: Option<Outcome>,
    /// What happens to the body.
    pub body: BodyFaults,
}

/// Decides the faults for one upstream request of `method` on `path`:
/// each matching rule takes one draw in [0, 100) from `draw` and hits when
/// it is below its percentage; a latency rule with jitter takes a second.
/// Rules overlap: latencies add up, the strongest outcome wins.
pub fn decide(
    rules: &[Fault],
    method: &Method,
    path: &str,
    mut draw: impl FnMut() -> f64,
) -> Injected {
    let mut out = Injected::default();
    for r in rules.iter().filter(|r| r.matches(method, path)) {
        if draw() >= r.percent {
            continue;
        }
        let outcome = match r.kind {
            FaultKind::Latency => {
                let base = r.latency.unwrap_or_default();
                let jitter = r.jitter.unwrap_or_default();
                out.delay += if jitter.is_zero() {
                    base
                } else {
                    // uniform in [base - jitter, base + jitter], never below 0
                    let span = jitter.as_secs_f64() * (draw() / 50.0 - 1.0);
                    Duration::from_secs_f64((base.as_secs_f64() + span).max(0.0))
                };
                None
            }
            FaultKind::UpstreamDown => Some(Outcome::Refused),
            FaultKind::Blackhole => Some(Outcome::Blackhole),
            FaultKind::ErrorStatus => Some(Outcome::Status(r.status.unwrap_or(503))),
            FaultKind::Reset | FaultKind::Truncate => {
                let at = r.after_bytes.unwrap_or(0);
                out.body.cut = Some(out.body.cut.map_or(at, |c| c.min(at)));
                None
            }
            FaultKind::SlowBody => {
                let bps = r.bytes_per_sec.unwrap_or(1);
                out.body.pace = Some(out.body.pace.map_or(bps, |p| p.min(bps)));
                None
            }
        };
        out.outcome = match (out.outcome, outcome) {
            (None, o) | (o, None) => o,
            (Some(a), Some(b)) => Some(if rank(b) > rank(a) { b } else { a }),
        };
    }
    out
}

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Refused => 3,
        Outcome::Blackhole => 2,
        Outcome::Status(_) => 1,
    }
}

/// Draw `n` of the sequence seeded by `seed`, in [0, 100): SplitMix64 of
/// the pair, so the sequence is the same for the same seed and order of
/// upstream requests, whichever connection carries them.
pub fn draw(seed: u64, n: u64) -> f64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: FaultKind) -> Fault {
        Fault::new(kind)
    }

    #[test]
    fn rules_read_from_toml_and_name_what_is_wrong() {
        #[derive(Deserialize)]
        struct F {
            rules: Vec<Fault>,
        }
        let f: F = toml::from_str(
            "[[rules]]\nkind = \"latency\"\nlatency = \"300ms\"\njitter = \"50ms\"\n\
             [[rules]]\nkind = \"error-status\"\npercent = 10\nstatus = 500\npath_prefix = \"/api\"\n",
        )
        .unwrap();
        assert_eq!(f.rules[0].latency, Some(Duration::from_millis(300)));
        assert_eq!(f.rules[1].status, Some(500));
        assert!(f.rules.iter().all(|r| r.validate().is_ok()));
        let bad = toml::from_str::<F>("[[rules]]\nkind = \"meteor\"\n")
            .err()
            .unwrap();
        assert!(bad.to_string().contains("meteor"), "{bad}");
        let typo = toml::from_str::<F>("[[rules]]\nkind = \"latency\"\nlatancy = \"1s\"\n")
            .err()
            .unwrap();
        assert!(typo.to_string().contains("latancy"), "{typo}");

        for (r, field) in [
            (rule(FaultKind::Latency), "latency"),
            (
                Fault {
                    latency: Some(Duration::from_secs(1)),
                    ..rule(FaultKind::UpstreamDown)
                },
                "latency",
            ),
            (
                Fault {
                    status: Some(503),
                    ..rule(FaultKind::Blackhole)
                },
                "status",
            ),
            (
                Fault {
                    status: Some(999),
                    ..rule(FaultKind::ErrorStatus)
                },
                "status",
            ),
            (
                Fault {
                    percent: 101.0,
                    ..rule(FaultKind::ErrorStatus)
                },
                "percent",
            ),
            (
                Fault {
                    path_prefix: Some("api".into()),
                    ..rule(FaultKind::ErrorStatus)
                },
                "path_prefix",
            ),
            (
                Fault {
                    method: Some("GE T".into()),
                    ..rule(FaultKind::ErrorStatus)
                },
                "method",
            ),
        ] {
            assert_eq!(r.validate().unwrap_err().0, field, "{r:?}");
        }
    }

    #[test]
    fn matchers_percent_and_overlap() {
        let get = Method::GET;
        let slow = Fault {
            latency: Some(Duration::from_millis(300)),
            path_prefix: Some("/api".into()),
            ..rule(FaultKind::Latency)
        };
        let down_posts = Fault {
            method: Some("post".into()),
            ..rule(FaultKind::UpstreamDown)
        };
        let errors = Fault {
            percent: 50.0,
            ..rule(FaultKind::ErrorStatus)
        };
        let rules = [slow, down_posts, errors];
        // draws below 50 hit the half-time rule
        let hit = decide(&rules, &get, "/api/x", || 10.0);
        assert_eq!(hit.delay, Duration::from_millis(300));
        assert_eq!(hit.outcome, Some(Outcome::Status(503)));
        let miss = decide(&rules, &get, "/page", || 60.0);
        assert_eq!(miss, Injected::default());
        // refused outranks a status
        let post = decide(&rules, &Method::POST, "/page", || 10.0);
        assert_eq!(post.outcome, Some(Outcome::Refused));
        assert_eq!(post.delay, Duration::ZERO);
    }

    #[test]
    fn body_faults_take_the_least_cut_and_the_slowest_pace() {
        let rules = [
            Fault {
                after_bytes: Some(100),
                ..rule(FaultKind::Truncate)
            },
            Fault {
                bytes_per_sec: Some(500),
                ..rule(FaultKind::SlowBody)
            },
            Fault {
                bytes_per_sec: Some(200),
                path_prefix: Some("/big".into()),
                ..rule(FaultKind::SlowBody)
            },
        ];
        let small = decide(&rules, &Method::GET, "/", || 0.0);
        assert_eq!(
            small.body,
            BodyFaults {
                cut: Some(100),
                pace: Some(500)
            }
        );
        assert_eq!(small.outcome, None);
        let big = decide(&rules, &Method::GET, "/big", || 0.0);
        assert_eq!(big.body.pace, Some(200));
        let reset = decide(&[rule(FaultKind::Reset)], &Method::GET, "/", || 0.0);
        assert_eq!(reset.body.cut, Some(0));
        for (r, field) in [
            (rule(FaultKind::SlowBody), "bytes_per_sec"),
            (
                Fault {
                    bytes_per_sec: Some(0),
                    ..rule(FaultKind::SlowBody)
                },
                "bytes_per_sec",
            ),
            (rule(FaultKind::Truncate), "after_bytes"),
            (
                Fault {
                    after_bytes: Some(1),
                    ..rule(FaultKind::Reset)
                },
                "after_bytes",
            ),
        ] {
            assert_eq!(r.validate().unwrap_err().0, field, "{r:?}");
        }
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let r = [Fault {
            latency: Some(Duration::from_millis(100)),
            jitter: Some(Duration::from_millis(50)),
            ..rule(FaultKind::Latency)
        }];
        for n in 0..1000 {
            let mut k = 0;
            let d = decide(&r, &Method::GET, "/", || {
                k += 1;
                draw(7, n * 2 + k)
            })
            .delay;
            assert!(
                (Duration::from_millis(50)..=Duration::from_millis(150)).contains(&d),
                "{d:?}"
            );
        }
    }

    #[test]
    fn draws_are_seeded_and_spread() {
        let a: Vec<f64> = (0..5).map(|n| draw(42, n)).collect();
        let b: Vec<f64> = (0..5).map(|n| draw(42, n)).collect();
        assert_eq!(a, b, "the same seed gives the same sequence");
        assert_ne!(a, (0..5).map(|n| draw(43, n)).collect::<Vec<_>>());
        let under_10 = (0..10_000).filter(|&n| draw(1, n) < 10.0).count();
        assert!((900..=1100).contains(&under_10), "{under_10}");
        assert!((0..10_000).all(|n| (0.0..100.0).contains(&draw(9, n))));
    }
}

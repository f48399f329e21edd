//! Checks: assertions on each response, counted as k6's `checks` rate.

use std::fmt;

use http::header::HeaderName;

use crate::error::{Error, Result};

/// One check, written as a short expression:
///
/// | expression | holds when |
/// |---|---|
/// | `status==200` (also `!=`, `<`, `<=`, `>`, `>=`) | the status compares so |
/// | `header:X-Cache-Status` | the header is present |
/// | `header:X-Cache-Status==HIT` | the header has exactly that value |
/// | `body~Welcome` | the body contains the text |
/// | `body!~error` | the body does not contain the text |
///
/// A request that got no response fails every check. Body checks look at
/// the whole body as it streams in, without keeping it: a 1 GB body costs
/// no more memory than a small one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    name: String,
    kind: CheckKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CheckKind {
    Status(StatusOp, u16),
    HeaderPresent(HeaderName),
    HeaderEquals(HeaderName, String),
    BodyContains(String),
    BodyLacks(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Check {
    /// Parses a check expression (see the table above).
    ///
    /// # Errors
    /// [`Error::Check`] naming the expression.
    pub fn parse(expr: &str) -> Result<Self> {
        let err = |message: &str| Error::Check {
            expr: expr.to_string(),
            message: message.to_string(),
        };
        let e = expr.trim();
        let kind = if let Some(rest) = e.strip_prefix("status") {
            let rest = rest.trim_start();
            let (op, n) = [
                ("==", StatusOp::Eq),
                ("!=", StatusOp::Ne),
                ("<=", StatusOp::Le),
                (">=", StatusOp::Ge),
                ("<", StatusOp::Lt),
                (">", StatusOp::Gt),
            ]
            .iter()
            .find_map(|(p, op)| rest.strip_prefix(p).map(|n| (*op, n)))
            .ok_or_else(|| err("expected status==N (or !=, <, <=, >, >=)"))?;
            let code: u16 = n
                .trim()
                .parse()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(|| err("the status is a number from 100 to 999"))?;
            CheckKind::Status(op, code)
        } else if let Some(rest) = e.strip_prefix("header:") {
            let (name, value) = match rest.split_once("==") {
                Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
                None => (rest.trim(), None),
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(&format!("{name:?} is not a header name")))?;
            match value {
                Some(v) => CheckKind::HeaderEquals(name, v),
                None => CheckKind::HeaderPresent(name),
            }
        } else if let Some(text) = e.strip_prefix("body!~") {
            CheckKind::BodyLacks(text.to_string())
        } else if let Some(text) = e.strip_prefix("body~") {
            if text.is_empty() {
                return Err(err("body~ needs the text to look for"));
            }
            CheckKind::BodyContains(text.to_string())
        } else {
            return Err(err(
                "expected status==N, header:NAME, header:NAME==VALUE, body~TEXT or body!~TEXT",
            ));
        };
        Ok(Check {
            name: e.to_string(),
            kind,
        })
    }

    /// The check's name in summaries (its expression).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether evaluating the check needs the response body.
    pub fn needs_body(&self) -> bool {
        matches!(
            self.kind,
            CheckKind::BodyContains(_) | CheckKind::BodyLacks(_)
        )
    }

    /// Evaluates the check on a response; `None` when no response arrived.
    pub fn holds(&self, response: Option<(&http::response::Parts, &[u8])>) -> bool {
        let Some((parts, body)) = response else {
            return false;
        };
        let found = self.needle().map(|n| contains(body, n));
        self.holds_scanned(parts, found)
    }

    /// The text a body check looks for.
    fn needle(&self) -> Option<&[u8]> {
        match &self.kind {
            CheckKind::BodyContains(t) | CheckKind::BodyLacks(t) => Some(t.as_bytes()),
            _ => None,
        }
    }

    /// Evaluates the check on a response head and, for a body check,
    /// whether a [`BodyScan`] found its text.
    pub(crate) fn holds_scanned(&self, parts: &http::response::Parts, found: Option<bool>) -> bool {
        let found = found.unwrap_or(false);
        match &self.kind {
            CheckKind::Status(op, code) => {
                let s = parts.status.as_u16();
                match op {
                    StatusOp::Eq => s == *code,
                    StatusOp::Ne => s != *code,
                    StatusOp::Lt => s < *code,
                    StatusOp::Le => s <= *code,
                    StatusOp::Gt => s > *code,
                    StatusOp::Ge => s >= *code,
                }
            }
            CheckKind::HeaderPresent(n) => parts.headers.contains_key(n),
            CheckKind::HeaderEquals(n, v) => parts
                .headers
                .get_all(n)
                .iter()
                .any(|h| h.as_bytes() == v.as_bytes()),
            CheckKind::BodyContains(_) => found,
            CheckKind::BodyLacks(_) => !found,
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The body checks of one response, matched while the body streams in: it
/// keeps, per check, only the last `len - 1` bytes seen (a match may span
/// two frames), never the body.
pub(crate) struct BodyScan<'a> {
    needles: Vec<Needle<'a>>,
}

struct Needle<'a> {
    check: usize,
    finder: memchr::memmem::Finder<'a>,
    carry: Vec<u8>,
    found: bool,
}

impl<'a> BodyScan<'a> {
    /// A scan for the body checks among `checks`; `None` when there are none.
    pub(crate) fn new(checks: &'a [Check]) -> Option<Self> {
        let needles: Vec<Needle<'a>> = checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.needle().map(|n| Needle {
                    check: i,
                    finder: memchr::memmem::Finder::new(n),
                    carry: Vec::new(),
                    found: n.is_empty(),
                })
            })
            .collect();
        (!needles.is_empty()).then_some(BodyScan { needles })
    }

    /// Looks at the next bytes of the body.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        for n in self.needles.iter_mut().filter(|n| !n.found) {
            let keep = n.finder.needle().len() - 1;
            // the bytes kept from before, then the start of these: a match
            // that spans the two
            let mut edge = std::mem::take(&mut n.carry);
            let had = !edge.is_empty();
            edge.extend_from_slice(&data[..keep.min(data.len())]);
            if (had && n.finder.find(&edge).is_some()) || n.finder.find(data).is_some() {
                n.found = true;
                continue;
            }
            // the last `keep` bytes seen, for the next frame
            if data.len() >= keep {
                edge.clear();
                edge.extend_from_slice(&data[data.len() - keep..]);
            } else {
                let excess = edge.len().saturating_sub(keep);
                edge.drain(..excess);
            }
            n.carry = edge;
        }
    }

    /// Whether check `i`'s text was seen (`None` for a check not on the body).
    pub(crate) fn found(&self, i: usize) -> Option<bool> {
        self.needles.iter().find(|n| n.check == i).map(|n| n.found)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn evaluates_each_kind() {
        let p = parts(200, &[("X-Cache-Status", "HIT")]);
        let r = Some((&p, &b"<h1>Welcome</h1>"[..]));
        let holds = |e: &str| Check::parse(e).unwrap().holds(r);
        assert!(holds("status==200"));
        assert!(holds("status < 400"));
        assert!(!holds("status!=200"));
        assert!(holds("header:x-cache-status"));
        assert!(holds("header:X-Cache-Status==HIT"));
        assert!(!holds("header:X-Cache-Status==MISS"));
        assert!(!holds("header:Set-Cookie"));
        assert!(holds("body~Welcome"));
        assert!(!holds("body!~Welcome"));
        assert!(
            !Check::parse("status==200").unwrap().holds(None),
            "no response fails"
        );
        assert!(Check::parse("body~x").unwrap().needs_body());
    }

    #[test]
    fn body_checks_match_across_frames_without_keeping_the_body() {
        let checks = [
            Check::parse("body~needle").unwrap(),
            Check::parse("body!~absent").unwrap(),
            Check::parse("status==200").unwrap(),
        ];
        let p = parts(200, &[]);
        let body = b"xxxxxxxxxxxxneedlexxxxxxxx";
        // every way of cutting the body into frames finds it
        for cut in 1..body.len() {
            let mut scan = BodyScan::new(&checks).unwrap();
            for frame in body.chunks(cut) {
                scan.feed(frame);
            }
            assert!(checks[0].holds_scanned(&p, scan.found(0)), "cut {cut}");
            assert!(checks[1].holds_scanned(&p, scan.found(1)), "cut {cut}");
            assert_eq!(scan.found(2), None);
            assert!(scan.needles.iter().all(|n| n.carry.len() < 6));
        }
        let mut scan = BodyScan::new(&checks).unwrap();
        scan.feed(b"nee");
        scan.feed(b"d");
        scan.feed(b"le");
        assert!(checks[0].holds_scanned(&p, scan.found(0)), "three frames");
        assert!(BodyScan::new(&checks[2..]).is_none());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "status=200",
            "status==abc",
            "status==42",
            "header:bad name",
            "body~",
            "latency<3",
        ] {
            let e = Check::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(bad.trim()), "{e} should name {bad:?}");
        }
    }
}

//! Flows: what a k6 script's default function does for a web service, as
//! data. An iteration runs its steps in order; a step's URL, headers and
//! body are templates over the iteration's variables (`{{token}}`), which
//! come from a CSV data file, from `__VU` and `__ITER`, and from values
//! earlier steps extracted from their responses (`json.user.id`,
//! `header:ETag`); a step may wait a think time after its response.
//!
//! This module holds the pure parts: templates, JSON paths, think times and
//! the step checks that need the response body or its duration. The runner
//! sends the requests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::Check;
use crate::config::parse_duration;
use crate::error::{Error, Result};

/// One step of a flow, as a scenario file writes it (`[[steps]]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The `name` tag of the step's request (default: its URL template),
    /// for per-step metrics and thresholds (`http_req_duration{name:login}`).
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// A path (`/users/{{id}}`) joined to the target, or an absolute URL
    /// whose scheme and host are literal; variables go in the path and query.
    pub url: String,
    /// Headers, values may hold variables.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A raw body template.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON body: strings may hold variables; a string that is exactly
    /// `"{{name}}"` takes the variable's JSON value (a number stays a number).
    /// Sets `Content-Type: application/json` unless a header says otherwise.
    #[serde(default)]
    pub json: Option<Value>,
    /// A form body (`application/x-www-form-urlencoded`), values may hold
    /// variables.
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
    /// Checks on this step's response: those of [`Check`](crate::Check)
    /// and `json.PATH`, `json.PATH == VALUE`, `duration < 200ms`.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Variables taken from the response for later steps:
    /// `token = "json.token"`, `etag = "header:ETag"`.
    #[serde(default)]
    pub extract: BTreeMap<String, String>,
    /// Think time after the response: `"1s"`, or a uniform range `"500ms..2s"`.
    #[serde(default)]
    pub think: Option<String>,
    /// The group the step is in (k6's `group("login", ...)`): its request
    /// and checks carry the tag `group` = `::login`, and consecutive steps
    /// of one group are timed together as `group_duration`, think times
    /// included.
    #[serde(default)]
    pub group: Option<String>,
    /// Tags of the step's request besides k6's own (k6's `params.tags`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Tags k6 sets itself, which a request's own `tags` cannot take.
const SYSTEM_TAGS: &[&str] = &[
    "name",
    "method",
    "url",
    "status",
    "group",
    "scenario",
    "proto",
    "expected_response",
    "error",
    "error_code",
    "check",
    "tls_version",
    "service",
    "subproto",
    "cache_status",
];

/// Checks a request's own tags: names k6 does not set itself, values that
/// fit a line.
pub(crate) fn check_tags(field: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        let f = format!("{field}.{k}");
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(Error::config(
                f,
                format!("{k:?} is not a tag name (letters, digits, '_', '-', '.')"),
            ));
        }
        if is_system_tag(k) {
            return Err(Error::config(
                f,
                format!("{k:?} is a tag Atlas sets itself (as k6 does); name the step with `name`, put it in a group with `group`"),
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(Error::config(
                f,
                format!("{v:?}: a tag value holds no control characters"),
            ));
        }
    }
    Ok(())
}

/// Whether k6 (and Atlas) set tag `k` themselves.
pub(crate) fn is_system_tag(k: &str) -> bool {
    SYSTEM_TAGS.contains(&k)
}

/// k6's path of a group: `::login` for `login`.
///
/// # Errors
/// When the name is empty or holds `::` (k6 refuses it too).
pub(crate) fn group_path(field: &str, name: &str) -> Result<String> {
    if name.trim().is_empty() || name.contains("::") {
        return Err(Error::config(
            field,
            format!("{name:?}: a group name is not empty and holds no '::' (as in k6)"),
        ));
    }
    Ok(format!("::{name}"))
}

/// A template: literal text and `{{name}}` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// How a variable's value is written into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escape {
    /// As it is (headers, raw bodies).
    None,
    /// Percent-encoded, so a value cannot change a URL's structure.
    Url,
}

impl Template {
    /// Parses `text`; `field` names it in errors.
    pub(crate) fn parse(field: &str, text: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                Error::config(field, format!("{text:?}: a '{{{{' without its '}}}}'"))
            })?;
            let name = after[..close].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(Error::config(
                    field,
                    format!("{text:?}: {{{{{name}}}}} is not a variable name (letters, digits, '_', '-')"),
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The variables it uses, in order.
    pub(crate) fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Whether it has no variable.
    pub(crate) fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// The whole template when it is exactly one variable.
    pub(crate) fn single_var(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Var(v)] => Some(v),
            _ => None,
        }
    }

    /// The text with each variable's value (an unset one is empty).
    pub(crate) fn render(&self, vars: &Vars, escape: Escape) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    let text = vars.text(v);
                    match escape {
                        Escape::None => out.push_str(&text),
                        Escape::Url => percent_encode(&text, &mut out),
                    }
                }
            }
        }
        out
    }
}

/// `s` percent-encoded as a form key or value.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    percent_encode(s, &mut out);
    out
}

/// Unreserved characters (RFC 3986) stay; everything else is `%XX`.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// An iteration's variables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vars {
    values: Vec<(String, Value)>,
}

impl Vars {
    /// Sets `name` (replacing an earlier value).
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        match self.values.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name.to_string(), value)),
        }
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value as text: a string as it is, other JSON as JSON, unset as "".
    fn text(&self, name: &str) -> String {
        match self.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }
}

/// A JSON body template: the value with every string a template.
pub(crate) fn render_json(v: &Value, vars: &Vars) -> Value {
    match v {
        Value::String(s) => match Template::parse("", s) {
            Ok(t) => match t.single_var().and_then(|n| vars.get(n)) {
                Some(value) => value.clone(),
                None => Value::String(t.render(vars, Escape::None)),
            },
            Err(_) => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_json(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The variables a JSON body template uses.
pub(crate) fn json_vars(v: &Value, field: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    fn walk(v: &Value, field: &str, out: &mut Vec<String>) -> Result<()> {
        match v {
            Value::String(s) => {
                out.extend(Template::parse(field, s)?.vars().map(str::to_string));
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, field, out)?;
                }
            }
            Value::Object(o) => {
                for x in o.values() {
                    walk(x, field, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(v, field, &mut out)?;
    Ok(out)
}

/// A path into a JSON document: `json.user.id`, `json.items[0].name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonPath {
    text: String,
    segments: Vec<Seg>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// Parses `json.a.b[0]`; `None` when `s` does not start with `json`.
    pub(crate) fn parse(s: &str) -> Option<std::result::Result<JsonPath, String>> {
        let rest = s.trim().strip_prefix("json")?;
        let mut segments = Vec::new();
        let mut chars = rest;
        while !chars.is_empty() {
            if let Some(r) = chars.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() {
                    return Some(Err(format!("{s:?}: an empty key")));
                }
                segments.push(Seg::Key(key.to_string()));
                chars = &r[end..];
            } else if let Some(r) = chars.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Some(Err(format!("{s:?}: a '[' without its ']'")));
                };
                let Ok(i) = r[..end].trim().parse() else {
                    return Some(Err(format!("{s:?}: [{}] is not an index", &r[..end])));
                };
                segments.push(Seg::Index(i));
                chars = &r[end + 1..];
            } else {
                return Some(Err(format!(
                    "{s:?}: expected json.KEY or json[INDEX] after {:?}",
                    &s[..s.len() - chars.len()]
                )));
            }
        }
        Some(Ok(JsonPath {
            text: s.trim().to_string(),
            segments,
        }))
    }

    /// The value at the path in `doc`.
    pub(crate) fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(doc, |v, s| match s {
            Seg::Key(k) => v.get(k),
            Seg::Index(i) => v.get(i),
        })
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where an extracted variable comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Json(JsonPath),
    Header(http::header::HeaderName),
}

impl Source {
    /// Parses `json.PATH` or `header:NAME`.
    pub(crate) fn parse(field: &str, s: &str) -> Result<Source> {
        if let Some(p) = JsonPath::parse(s) {
            return p.map(Source::Json).map_err(|e| Error::config(field, e));
        }
        if let Some(name) = s.trim().strip_prefix("header:") {
            return http::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map(Source::Header)
                .map_err(|_| Error::config(field, format!("{name:?} is not a header name")));
        }
        Err(Error::config(
            field,
            format!("{s:?}: extract from json.PATH or header:NAME"),
        ))
    }

    /// Whether the response body is needed.
    pub(crate) fn needs_body(&self) -> bool {
        matches!(self, Source::Json(_))
    }

    /// The value in a response; `None` when it is not there.
    pub(crate) fn read(&self, headers: &http::HeaderMap, doc: Option<&Value>) -> Option<Value> {
        match self {
            Source::Json(p) => doc.and_then(|d| p.get(d)).cloned(),
            Source::Header(h) => headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|v| Value::String(v.to_string())),
        }
    }
}

/// A check on a step's response: the [`Check`] kinds, and those that
/// need the body parsed as JSON or the request's duration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StepCheck {
    Plain(Check),
    /// `json.PATH` (present), `json.PATH == VALUE`, `json.PATH != VALUE`.
    Json {
        path: JsonPath,
        expect: Option<(bool, Value)>,
    },
    /// `duration < 200ms` (also `<=`, `>`, `>=`), from the step's send.
    Duration {
        op: Cmp,
        limit: Duration,
    },
}

/// An ordering comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl StepCheck {
    /// Parses a step check; `field` names it in errors.
    pub(crate) fn parse(field: &str, expr: &str) -> Result<StepCheck> {
        let e = expr.trim();
        if let Some(rest) = e.strip_prefix("duration") {
            let rest = rest.trim_start();
            let (op, limit) = [
                ("<=", Cmp::Le),
                (">=", Cmp::Ge),
                ("<", Cmp::Lt),
                (">", Cmp::Gt),
            ]
            .iter()
            .find_map(|(p, op)| rest.strip_prefix(p).map(|l| (*op, l)))
            .ok_or_else(|| {
                Error::config(
                    field,
                    format!("{expr:?}: expected duration < 200ms (or <=, >, >=)"),
                )
            })?;
            let limit = parse_duration(limit.trim())
                .map_err(|m| Error::config(field, format!("{expr:?}: {m}")))?;
            return Ok(StepCheck::Duration { op, limit });
        }
        let (lhs, expect) = match e
            .split_once("==")
            .map(|(l, r)| (l, true, r))
            .or_else(|| e.split_once("!=").map(|(l, r)| (l, false, r)))
        {
            Some((l, eq, r)) => (l, Some((eq, r.trim()))),
            None => (e, None),
        };
        if let Some(path) = JsonPath::parse(lhs) {
            let path = path.map_err(|m| Error::config(field, m))?;
            let expect = expect.map(|(eq, v)| {
                // a JSON literal (42, true, "x"), else the bare text as a string
                let value =
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
                (eq, value)
            });
            return Ok(StepCheck::Json { path, expect });
        }
        Check::parse(expr)
            .map(StepCheck::Plain)
            .map_err(|e| Error::config(field, e.to_string()))
    }

    /// Whether the response body is needed.
    pub(crate) fn needs_body(&self) -> bool {
        match self {
            StepCheck::Plain(c) => c.needs_body(),
            StepCheck::Json { .. } => true,
            StepCheck::Duration { .. } => false,
        }
    }

    /// Evaluates the check: `response` is the head, the body kept and the
    /// body parsed as JSON (when it is JSON); `None` when no response came.
    pub(crate) fn holds(
        &self,
        response: Option<(&http::response::Parts, &[u8], Option<&Value>)>,
        took: Duration,
    ) -> bool {
        match self {
            StepCheck::Plain(c) => c.holds(response.map(|(p, b, _)| (p, b))),
            StepCheck::Json { path, expect } => {
                let found = response
                    .and_then(|(_, _, doc)| doc)
                    .and_then(|d| path.get(d));
                match (found, expect) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(v), Some((eq, want))) => (v == want) == *eq,
                }
            }
            StepCheck::Duration { op, limit } => {
                response.is_some()
                    && match op {
                        Cmp::Lt => took < *limit,
                        Cmp::Le => took <= *limit,
                        Cmp::Gt => took > *limit,
                        Cmp::Ge => took >= *limit,
                    }
            }
        }
    }
}

/// Think time after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Think {
    Fixed(Duration),
    /// Uniform in `[low, high]`.
    Uniform(Duration, Duration),
}

impl Think {
    /// Parses `"1s"` or `"500ms..2s"`.
    pub(crate) fn parse(field: &str, s: &str) -> Result<Think> {
        let d = |t: &str| parse_duration(t.trim()).map_err(|e| Error::config(field, e));
        match s.split_once("..") {
            Some((a, b)) => {
                let (low, high) = (d(a)?, d(b)?);
                if low > high {
                    return Err(Error::config(
                        field,
                        format!("{s:?}: the range runs from low to high"),
                    ));
                }
                Ok(Think::Uniform(low, high))
            }
            None => Ok(Think::Fixed(d(s)?)),
        }
    }

    /// The wait, given a uniform draw `u` in `[0, 1)`.
    pub(crate) fn wait(self, u: f64) -> Duration {
        match self {
            Think::Fixed(d) => d,
            Think::Uniform(low, high) => low + (high - low).mul_f64(u.clamp(0.0, 1.0)),
        }
    }
}

/// A CSV data file: a header row of variable names, then one row per user
/// (k6's `SharedArray` over papaparse). Iteration `i` takes row `i % rows`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Data {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Data {
    /// Reads `path` (RFC 4180, through the `csv` crate); errors name the
    /// file and the line.
    pub(crate) fn read(path: &std::path::Path) -> Result<Data> {
        let at = |line: u64, what: String| {
            Error::config("data", format!("{}:{line}: {what}", path.display()))
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| Error::config("data", format!("{}: {e}", path.display())))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| at(1, e.to_string()))?
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(at(1, "empty: the first line names the columns".into()));
        }
        for c in &columns {
            Template::parse("data", &format!("{{{{{c}}}}}"))
                .map_err(|_| at(1, format!("column {c:?} is not a variable name")))?;
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                let what = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        len, expected_len, ..
                    } => {
                        format!("{len} fields, the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                at(line, what)
            })?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(at(2, "no data rows after the header".into()));
        }
        Ok(Data { columns, rows })
    }

    /// Sets row `iteration % rows` into `vars`.
    pub(crate) fn fill(&self, iteration: u64, vars: &mut Vars) {
        let row = &self.rows[(iteration % self.rows.len() as u64) as usize];
        for (c, v) in self.columns.iter().zip(row) {
            vars.set(c, Value::String(v.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, Value)]) -> Vars {
        let mut v = Vars::default();
        for (k, x) in pairs {
            v.set(k, x.clone());
        }
        v
    }

    #[test]
    fn templates_render_variables_and_encode_them_in_urls() {
        let t = Template::parse("url", "/users/{{ id }}/items?q={{q}}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id", "q"]);
        let v = vars(&[("id", json!(42)), ("q", json!("a b/&c"))]);
        assert_eq!(t.render(&v, Escape::Url), "/users/42/items?q=a%20b%2F%26c");
        assert_eq!(t.render(&v, Escape::None), "/users/42/items?q=a b/&c");
        assert!(Template::parse("url", "/plain").unwrap().is_literal());
        let e = Template::parse("steps[1].url", "/x/{{id")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("steps[1].url") && e.contains("without its"),
            "{e}"
        );
        let e = Template::parse("f", "{{a.b}}").unwrap_err().to_string();
        assert!(e.contains("not a variable name"), "{e}");
    }

    #[test]
    fn a_json_body_keeps_the_type_of_a_whole_variable() {
        let body = json!({"id": "{{id}}", "note": "user {{id}}", "tags": ["{{tag}}"], "n": 1});
        let v = vars(&[("id", json!(42)), ("tag", json!("x"))]);
        assert_eq!(
            render_json(&body, &v),
            json!({"id": 42, "note": "user 42", "tags": ["x"], "n": 1})
        );
        let mut used = json_vars(&body, "json").unwrap();
        used.sort();
        assert_eq!(used, ["id", "id", "tag"]);
    }

    #[test]
    fn json_paths_find_nested_keys_and_indexes() {
        let doc = json!({"user": {"id": 42, "roles": ["a", "b"]}});
        let p = |s| JsonPath::parse(s).unwrap().unwrap();
        assert_eq!(p("json.user.id").get(&doc), Some(&json!(42)));
        assert_eq!(p("json.user.roles[1]").get(&doc), Some(&json!("b")));
        assert_eq!(p("json.user.missing").get(&doc), None);
        assert_eq!(p("json").get(&doc), Some(&doc));
        assert!(JsonPath::parse("status").is_none());
        assert!(JsonPath::parse("json.user[x]").unwrap().is_err());
        assert!(JsonPath::parse("json..id").unwrap().is_err());
    }

    #[test]
    fn step_checks_read_json_fields_and_durations() {
        let parts = http::Response::builder()
            .status(200)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let doc = json!({"user": {"id": 42, "name": "alice"}});
        let body = doc.to_string();
        let r = Some((&parts, body.as_bytes(), Some(&doc)));
        let ms = Duration::from_millis;
        let holds = |e: &str, took| StepCheck::parse("c", e).unwrap().holds(r, took);
        assert!(holds("json.user.id == 42", ms(1)));
        assert!(!holds("json.user.id == 43", ms(1)));
        assert!(holds("json.user.id != 43", ms(1)));
        assert!(holds("json.user.name == alice", ms(1)));
        assert!(holds("json.user.name == \"alice\"", ms(1)));
        assert!(holds("json.user", ms(1)));
        assert!(!holds("json.token", ms(1)));
        assert!(holds("duration < 200ms", ms(150)));
        assert!(!holds("duration < 200ms", ms(200)));
        assert!(holds("duration <= 200ms", ms(200)));
        assert!(holds("status==200", ms(1)));
        assert!(holds("body~alice", ms(1)));
        assert!(!StepCheck::parse("c", "duration < 1s")
            .unwrap()
            .holds(None, ms(1)));
        let e = StepCheck::parse("steps[0].checks[1]", "duration ~ 1s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("steps[0].checks[1]"), "{e}");
        assert!(StepCheck::parse("c", "json.a[").is_err());
    }

    #[test]
    fn think_times_are_fixed_or_uniform() {
        assert_eq!(
            Think::parse("t", "1s").unwrap().wait(0.7),
            Duration::from_secs(1)
        );
        let u = Think::parse("t", "500ms..2s").unwrap();
        assert_eq!(u.wait(0.0), Duration::from_millis(500));
        assert_eq!(u.wait(0.5), Duration::from_millis(1250));
        assert!(Think::parse("steps[0].think", "2s..1s").is_err());
        assert!(Think::parse("steps[0].think", "soon").is_err());
    }

    #[test]
    fn csv_rows_feed_iterations_in_turn() {
        let dir = std::env::temp_dir().join(format!("atlas-flow-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("users.csv");
        std::fs::write(&f, "username,password\nalice,\"p,w\"\nbob,\"x\"\"y\"\n").unwrap();
        let d = Data::read(&f).unwrap();
        assert_eq!(d.columns, ["username", "password"]);
        let mut v = Vars::default();
        d.fill(0, &mut v);
        assert_eq!(v.get("password"), Some(&json!("p,w")));
        d.fill(3, &mut v);
        assert_eq!(v.get("username"), Some(&json!("bob")));
        assert_eq!(v.get("password"), Some(&json!("x\"y")));
        std::fs::write(&f, "username,password\nalice\n").unwrap();
        let e = Data::read(&f).unwrap_err().to_string();
        assert!(
            e.contains("users.csv:2") && e.contains("1 fields, the header has 2"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

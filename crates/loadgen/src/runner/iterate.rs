//! A flow's iteration: its steps in order, each request rendered from the
//! iteration's variables, checked, its extractions taken, then its think
//! time waited.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::client::Kept;
use crate::flow::{
    form_encode, json_vars, render_json, Data, Escape, Source, StepCheck, StepSpec, Template,
    Think, Vars,
};

/// A flow, resolved: one route (request target) per step. [`plan`] numbers
/// routes, checks and groups within the flow; the test then renumbers the
/// steps' test-wide (`check_names`, `check_groups` and `groups` keep the
/// flow's own numbering).
#[derive(Debug)]
pub(crate) struct FlowPlan {
    pub steps: Vec<StepPlan>,
    pub data: Option<Data>,
    /// Every check the flow counts: the scenario's `checks` (on every
    /// step) then each step's own, one entry per distinct expression in
    /// each group.
    pub check_names: Vec<String>,
    /// The group path of each check (`::login`; `""` at the root).
    pub check_groups: Vec<String>,
    /// The groups' paths, in order of appearance.
    pub groups: Vec<String>,
    /// Closed-model iterations begun, scenario-wide: each takes the next
    /// data row.
    pub iterations_started: AtomicU64,
    /// Index of its scenario in the test.
    pub scenario: usize,
}

#[derive(Debug)]
pub(crate) struct StepPlan {
    /// Index of the step's target (its name, method, static parts).
    pub route: usize,
    /// The path and query, when they hold variables.
    pub path: Option<Template>,
    /// Headers whose values hold variables.
    pub headers: Vec<(HeaderName, Template)>,
    pub body: BodyPlan,
    /// (index among the checks, the check).
    pub checks: Vec<(usize, StepCheck)>,
    pub extract: Vec<(String, Source)>,
    pub think: Option<Think>,
    /// Whether the response body is kept (JSON checks and extractions).
    pub keep_body: bool,
    /// Index of the step's group among the groups.
    pub group: Option<usize>,
}

#[derive(Debug)]
pub(crate) enum BodyPlan {
    /// The target's own (literal or none).
    Static,
    Raw(Template),
    Json(Value),
    Form(Vec<(String, Template)>),
}

/// The request spec a step sends when its templates are set aside: the
/// literal parts, which the target is built from (a variable in the path
/// reads as `x` there, to check the rest parses).
pub(crate) fn step_request(step: &StepSpec, field: &str) -> Result<RequestSpec> {
    let url = Template::parse(&format!("{field}.url"), &step.url)?;
    if let Some(rest) = step.url.split_once("://").map(|(_, r)| r) {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains("{{") {
            return Err(Error::config(
                format!("{field}.url"),
                format!(
                    "{:?}: variables go in the path and query, not the scheme or host",
                    step.url
                ),
            ));
        }
    }
    let literal = |t: &str| Template::parse("", t).is_ok_and(|t| t.is_literal());
    let bodies = [
        step.body.is_some(),
        step.json.is_some(),
        step.form.is_some(),
    ];
    if bodies.iter().filter(|b| **b).count() > 1 {
        return Err(Error::config(
            format!("{field}.body"),
            "one of body, json and form",
        ));
    }
    let mut headers: BTreeMap<String, String> = step
        .headers
        .iter()
        .filter(|(_, v)| literal(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let has_type = step
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    if step.json.is_some() && !has_type {
        headers.insert("Content-Type".into(), "application/json".into());
    }
    if step.form.is_some() && !has_type {
        headers.insert(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        );
    }
    Ok(RequestSpec {
        method: step.method.clone().unwrap_or_else(|| "GET".into()),
        url: url.render(&Vars::placeholder(&url), Escape::Url),
        headers,
        body: step.body.clone().filter(|b| literal(b)),
        name: Some(step.name.clone().unwrap_or_else(|| step.url.clone())),
        weight: 1,
        tags: step.tags.clone(),
    })
}

impl Vars {
    /// Every variable of `t` set to `x`.
    fn placeholder(t: &Template) -> Vars {
        let mut v = Vars::default();
        for name in t.vars() {
            v.set(name, Value::String("x".into()));
        }
        v
    }
}

/// Resolves the steps; `routes[i]` is step `i`'s target. Every variable a
/// step uses must be set before it: by the data file, `__VU`, `__ITER`, or
/// an earlier step's `extract`.
pub(crate) fn plan(
    steps: &[StepSpec],
    common_checks: &[String],
    data: Option<Data>,
) -> Result<FlowPlan> {
    let mut known: Vec<String> = vec!["__VU".into(), "__ITER".into()];
    if let Some(d) = &data {
        known.extend(d.columns.iter().cloned());
    }
    // a check is one per expression within a group, as k6 keys checks by path
    let mut checks_seen: Vec<(String, String)> = Vec::new();
    let mut index_of = |group: &str, name: &str| -> usize {
        intern(&mut checks_seen, (group.to_string(), name.to_string()))
    };
    let mut groups: Vec<String> = Vec::new();
    let mut plans = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let field = |f: &str| format!("steps[{i}].{f}");
        let group = step
            .group
            .as_deref()
            .map(|g| crate::flow::group_path(&field("group"), g))
            .transpose()?;
        let group_path = group.clone().unwrap_or_default();
        let group = group.map(|g| intern(&mut groups, g));
        let defined = |f: String, names: Vec<String>, known: &[String]| -> Result<()> {
            match names.iter().find(|n| !known.contains(n)) {
                Some(n) => Err(Error::config(
                    f,
                    format!(
                        "{{{{{n}}}}} is not set before this step (set are: {}; a step's extract sets a variable for the steps after it)",
                        known.join(", ")
                    ),
                )),
                None => Ok(()),
            }
        };
        let url = Template::parse(&field("url"), &step.url)?;
        defined(
            field("url"),
            url.vars().map(str::to_string).collect(),
            &known,
        )?;
        let path = (!url.is_literal()).then(|| {
            // the part after the scheme and host, which the target's origin prefixes
            match step.url.split_once("://") {
                Some((_, rest)) => {
                    let cut = rest.find('/').map_or(rest.len(), |p| p);
                    Template::parse("", &rest[cut..]).expect("parsed above")
                }
                None => url.clone(),
            }
        });
        let mut headers = Vec::new();
        for (k, v) in &step.headers {
            let f = field(&format!("headers.{k}"));
            let t = Template::parse(&f, v)?;
            if !t.is_literal() {
                defined(f.clone(), t.vars().map(str::to_string).collect(), &known)?;
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| Error::config(f, format!("{k:?} is not a header name")))?;
                headers.push((name, t));
            }
        }
        let body = if let Some(b) = &step.body {
            let t = Template::parse(&field("body"), b)?;
            defined(
                field("body"),
                t.vars().map(str::to_string).collect(),
                &known,
            )?;
            if t.is_literal() {
                BodyPlan::Static
            } else {
                BodyPlan::Raw(t)
            }
        } else if let Some(j) = &step.json {
            defined(field("json"), json_vars(j, &field("json"))?, &known)?;
            BodyPlan::Json(j.clone())
        } else if let Some(form) = &step.form {
            let mut pairs = Vec::new();
            for (k, v) in form {
                let f = field(&format!("form.{k}"));
                let t = Template::parse(&f, v)?;
                defined(f, t.vars().map(str::to_string).collect(), &known)?;
                pairs.push((k.clone(), t));
            }
            BodyPlan::Form(pairs)
        } else {
            BodyPlan::Static
        };
        let mut checks = Vec::new();
        for (k, c) in common_checks.iter().enumerate() {
            checks.push((
                index_of(&group_path, c),
                StepCheck::parse(&format!("checks[{k}]"), c)?,
            ));
        }
        for (k, c) in step.checks.iter().enumerate() {
            let parsed = StepCheck::parse(&field(&format!("checks[{k}]")), c)?;
            checks.push((index_of(&group_path, c.trim()), parsed));
        }
        let mut extract = Vec::new();
        for (name, from) in &step.extract {
            let f = field(&format!("extract.{name}"));
            Template::parse(&f, &format!("{{{{{name}}}}}"))?;
            extract.push((name.clone(), Source::parse(&f, from)?));
        }
        let think = step
            .think
            .as_deref()
            .map(|t| Think::parse(&field("think"), t))
            .transpose()?;
        let keep_body = checks.iter().any(|(_, c)| c.needs_body())
            || extract.iter().any(|(_, s)| s.needs_body());
        known.extend(extract.iter().map(|(n, _)| n.clone()));
        plans.push(StepPlan {
            route: i,
            path,
            headers,
            body,
            checks,
            extract,
            think,
            keep_body,
            group,
        });
    }
    if checks_seen.len() > 64 {
        return Err(Error::config(
            "steps",
            format!(
                "{} distinct checks (an expression in each group counts once); at most 64",
                checks_seen.len()
            ),
        ));
    }
    let (check_groups, check_names) = checks_seen.into_iter().unzip();
    Ok(FlowPlan {
        steps: plans,
        data,
        check_names,
        check_groups,
        groups,
        iterations_started: AtomicU64::new(0),
        scenario: 0,
    })
}

impl StepPlan {
    /// The step's request for this iteration: the target with its
    /// templates rendered.
    fn target(&self, base: &Target, vars: &Vars) -> Target {
        let mut t = base.clone();
        if let Some(p) = &self.path {
            // values are percent-encoded and the literal parts parsed when
            // the flow was read (with `x` for each variable), so this parses
            let path = p.render(vars, Escape::Url);
            let abs = &base.absolute;
            let origin = format!(
                "{}://{}",
                abs.scheme_str().unwrap_or("http"),
                abs.authority().map_or("", |a| a.as_str())
            );
            if let (Ok(uri), Ok(abs)) = (path.parse::<Uri>(), format!("{origin}{path}").parse()) {
                t.uri = uri;
                t.absolute = abs;
            }
        }
        for (name, v) in &self.headers {
            // a value a header cannot carry (an extracted newline, say) is
            // left out; the step's checks then show what the server made of it
            if let Ok(value) = HeaderValue::from_str(&v.render(vars, Escape::None)) {
                t.headers.insert(name.clone(), value.clone());
                t.h2_headers.insert(name.clone(), value);
            }
        }
        let body = match &self.body {
            BodyPlan::Static => None,
            BodyPlan::Raw(b) => Some(b.render(vars, Escape::None)),
            BodyPlan::Json(j) => Some(render_json(j, vars).to_string()),
            BodyPlan::Form(pairs) => Some(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            form_encode(k),
                            form_encode(&v.render(vars, Escape::None))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("&"),
            ),
        };
        if let Some(b) = body {
            t.h2_headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
            t.body = Bytes::from(b);
        }
        t.bytes_out = request_bytes(&t.method, &t.uri, &t.headers, t.body.len());
        t
    }
}

impl Shared {
    /// Runs one iteration of the flow over `pools`, its first step due at
    /// `due`: `__ITER` is `iteration`, `__VU` is `vu`, and it takes data
    /// row `row` (modulo the rows).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn iterate(
        &self,
        flow: &FlowPlan,
        pools: &[HostPool],
        due: Instant,
        iteration: u64,
        row: u64,
        vu: u64,
        seed: u64,
    ) {
        let mut vars = Vars::default();
        vars.set("__VU", Value::from(vu));
        vars.set("__ITER", Value::from(iteration));
        if let Some(d) = &flow.data {
            d.fill(row, &mut vars);
        }
        let ctx = ExchangeCtx {
            pools,
            connector: &self.connector,
            traceparent: &self.traceparent,
            checks: &[],
            cache_rule: &self.cache_rule,
            timeout: self.timeout,
        };
        let mut step_due = due;
        // the group being timed: (its index, when its first step was due)
        let mut in_group: Option<(usize, Instant)> = None;
        let (mut sent_bytes, mut received_bytes) = (0u64, 0u64);
        let mut finished = true;
        for (k, step) in flow.steps.iter().enumerate() {
            if k > 0 && self.stop.load(Ordering::Relaxed) {
                // an iteration cut short times no group and no iteration
                finished = false;
                break;
            }
            if in_group.map(|(g, _)| g) != step.group {
                if let Some((g, began)) = in_group.take() {
                    self.record_group(flow.scenario, g, began.elapsed());
                }
                in_group = step.group.map(|g| (g, step_due));
            }
            let target = step.target(&self.targets[step.route], &vars);
            // the body only when a check or an extraction reads it
            let mut kept = Kept {
                want_body: step.keep_body,
                ..Kept::default()
            };
            let seq = row
                .wrapping_mul(flow.steps.len() as u64)
                .wrapping_add(k as u64);
            let sent = Instant::now();
            let mut s = exchange(&ctx, step.route, &target, step_due, seq, Some(&mut kept)).await;
            let took = sent.elapsed();
            let doc: Option<Value> = (step.keep_body && !kept.truncated)
                .then(|| serde_json::from_slice(&kept.body).ok())
                .flatten();
            let response = kept
                .head
                .as_ref()
                .map(|h| (h, kept.body.as_slice(), doc.as_ref()));
            for (i, c) in &step.checks {
                s.checks_applied |= 1 << i;
                if c.holds(response, took) {
                    s.checks_passed |= 1 << i;
                }
            }
            sent_bytes += s.bytes_sent;
            received_bytes += s.bytes_received;
            self.record(&s, false);
            if let Some(h) = &kept.head {
                for (name, from) in &step.extract {
                    if let Some(v) = from.read(&h.headers, doc.as_ref()) {
                        vars.set(name, v);
                    }
                }
            }
            if let Some(t) = step.think {
                let u = {
                    let mut x = seq ^ seed.rotate_left(29);
                    (splitmix64(&mut x) >> 11) as f64 / (1u64 << 53) as f64
                };
                tokio::time::sleep(t.wait(u)).await;
            }
            step_due = Instant::now();
        }
        if !finished {
            return;
        }
        if let Some((g, began)) = in_group {
            self.record_group(flow.scenario, g, began.elapsed());
        }
        self.record_iteration(flow.scenario, due.elapsed(), sent_bytes, received_bytes);
    }
}

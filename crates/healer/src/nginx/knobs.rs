//! Atlas's knobs in nginx's words: what the managed include holds for each
//! knob, what the user's configuration sets around it, and the value each
//! knob has where the gated routes are proxied. Pure functions over a
//! parsed [`Config`]; the I/O is in [`super::Nginx`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use atlas_vocab::ProxyKnob;
use serde_json::{json, Map, Value};

use super::conf::{find_all, level, Config, Directive, Place};

/// The line that carries the managed knobs' values in the include, so a
/// later run reads back exactly what an earlier one set.
const STATE: &str = "# atlas-knobs: ";

/// The variable the http-level include defines: 1 when the origin's
/// `Cache-Control` says `private` or `no-store`.
pub const PRIVATE_VAR: &str = "$atlas_private";

/// The knobs Atlas manages in the include, by name, with their values
/// (`{"cache.lock": true}`), as the include's state line records them.
pub type Managed = BTreeMap<String, Value>;

/// Lines of one directive, as the arguments of each.
pub type Lines = Vec<Vec<String>>;

/// How each knob maps to directives, as the README's table gives it.
/// `primary` is set once per block (a second is "is duplicate" to nginx,
/// or, for `proxy_cache_valid`, the first match wins): the user's own one
/// in the include's block is a conflict. `aux` are written only when the
/// user's block does not set them already. `carried` are the directives
/// of [`CARRIED`] its lines may write.
struct Mapping {
    knob: ProxyKnob,
    primary: &'static [&'static str],
    aux: &'static [&'static str],
    carried: &'static [&'static str],
}

const MAPPINGS: &[Mapping] = &[
    Mapping {
        knob: ProxyKnob::CacheTtl,
        primary: &["proxy_cache_valid"],
        aux: &[],
        carried: &["proxy_ignore_headers", "proxy_no_cache"],
    },
    Mapping {
        knob: ProxyKnob::CacheLock,
        primary: &["proxy_cache_lock"],
        aux: &["proxy_cache_lock_timeout", "proxy_cache_lock_age"],
        carried: &[],
    },
    Mapping {
        knob: ProxyKnob::CacheStaleWhileRevalidate,
        primary: &[],
        aux: &["proxy_cache_background_update"],
        carried: &["proxy_cache_use_stale"],
    },
    Mapping {
        knob: ProxyKnob::CacheStaleIfError,
        primary: &[],
        aux: &[],
        carried: &["proxy_cache_use_stale"],
    },
    Mapping {
        knob: ProxyKnob::CacheIgnoreSetCookie,
        primary: &[],
        aux: &[],
        carried: &["proxy_ignore_headers", "proxy_hide_header"],
    },
];

/// Why nginx cannot take a knob at all, whatever its configuration.
pub fn inexpressible(knob: ProxyKnob) -> Option<&'static str> {
    match knob {
        ProxyKnob::CacheSortQuery => Some(
            "nginx cannot sort query parameters in its cache key without a script (njs or Lua); \
             normalize the query order where the links are made, or put the Atlas proxy \
             (cache.sort_query = true) in front",
        ),
        ProxyKnob::Upstream => Some(
            "the upstream is the configuration's own proxy_pass, which an include in the same \
             location cannot replace (nginx: \"proxy_pass\" directive is duplicate)",
        ),
        _ => None,
    }
}

/// Where the gated routes are proxied and how the managed includes fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Each `include` of the knobs file.
    pub includes: Vec<Place>,
    /// The `include` of the http-level file, when there is one.
    pub http_include: Option<Place>,
    /// The `http` block (where the http-level include belongs).
    pub http: Option<Place>,
    /// Blocks that proxy (`location / {`, where, and its `proxy_pass`).
    pub proxied: Vec<(String, Place, Place)>,
    /// The knobs' values where the (first) include is, in `GET /config`'s
    /// shape (`{"cache": {"lock": true, ...}, "upstream": ...}`).
    pub values: Value,
    /// Per knob, directives the user's configuration sets in the include's
    /// block that the knob's own would collide with.
    pub conflicts: BTreeMap<&'static str, Vec<(String, Place)>>,
    /// What the blocks that include the knobs file have that its text must
    /// respect.
    pub around: Around,
}

impl Layout {
    /// Reads the layout of `cfg` for the knobs file `knobs` and the
    /// http-level file `http_knobs`.
    pub fn of(cfg: &Config, knobs: &Path, http_knobs: &Path) -> Layout {
        let is_include_of = |d: &Directive, target: &Path| {
            d.name == "include" && d.args.first().is_some_and(|a| cfg.resolve(a) == target)
        };
        let includes = find_all(&cfg.root, &|d| is_include_of(d, knobs));
        let http_include = find_all(&cfg.root, &|d| is_include_of(d, http_knobs))
            .into_iter()
            .find(|f| f.parent().is_some_and(|p| p.name == "http"))
            .map(|f| f.directive.at.clone());
        let http = find_all(&cfg.root, &|d| d.name == "http" && d.block.is_some())
            .first()
            .map(|f| f.directive.at.clone());
        let proxied = find_all(&cfg.root, &|d| d.name == "proxy_pass")
            .into_iter()
            .filter_map(|f| {
                let p = f.parent()?;
                let head = std::iter::once(p.name.as_str())
                    .chain(p.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                Some((head, p.at.clone(), f.directive.at.clone()))
            })
            .collect();
        let mut layout = Layout {
            includes: includes.iter().map(|f| f.directive.at.clone()).collect(),
            http_include,
            http,
            proxied,
            values: Value::Null,
            conflicts: BTreeMap::new(),
            around: Around::default(),
        };
        // the values where the include is, or where it belongs: the first
        // block that proxies
        let passes = find_all(&cfg.root, &|d| d.name == "proxy_pass");
        let Some(chain) = includes
            .first()
            .or_else(|| passes.first())
            .map(|f| &f.chain)
        else {
            return layout;
        };
        layout.values = values(cfg, chain, knobs);
        if includes.is_empty() {
            return layout;
        }
        // one file for every block that includes it: what it repeats must
        // be what each of them inherits
        let each: Vec<(Place, BTreeMap<&'static str, Lines>)> = includes
            .iter()
            .map(|f| (f.directive.at.clone(), inherited(&f.chain, knobs)))
            .collect();
        for name in CARRIED {
            let first = each[0].1.get(name);
            if each.iter().all(|(_, i)| i.get(name) == first) {
                if let Some(args) = first {
                    layout
                        .around
                        .inherited
                        .insert(name.to_string(), args.clone());
                }
            } else {
                let places = each
                    .iter()
                    .map(|(at, i)| (at.clone(), i.get(name).cloned().unwrap_or_default()))
                    .collect();
                layout.around.divergent.insert(name.to_string(), places);
            }
        }
        for f in &includes {
            let Some(block) = f.parent().and_then(|p| p.block.as_deref()) else {
                continue;
            };
            let users: Vec<&Directive> = level(block)
                .into_iter()
                .filter(|d| d.at.file != knobs)
                .collect();
            for m in MAPPINGS {
                for d in users
                    .iter()
                    .filter(|d| m.primary.contains(&d.name.as_str()))
                {
                    layout
                        .conflicts
                        .entry(m.knob.name())
                        .or_default()
                        .push((d.name.clone(), d.at.clone()));
                }
                for d in users.iter().filter(|d| m.aux.contains(&d.name.as_str())) {
                    if !layout.around.given.contains(&d.name) {
                        layout.around.given.push(d.name.clone());
                    }
                }
            }
        }
        layout
    }

    /// Why the healer cannot set `knob` through the include here, with
    /// the exact change that would let it; `None` when it can.
    pub fn unable(&self, knob: ProxyKnob, knobs: &Path, http_knobs: &Path) -> Option<String> {
        if let Some(why) = inexpressible(knob) {
            return Some(why.to_string());
        }
        if self.includes.is_empty() {
            let place = match self.proxied.first() {
                Some((head, block, pass)) => format!(
                    "inside `{head} {{` at {block}, the block whose proxy_pass ({pass}) serves the gated routes"
                ),
                None => "inside the location block that proxies the gated routes".into(),
            };
            return Some(format!(
                "the nginx configuration does not include Atlas's knobs file: add the line \
                 `include {};` {place}, then run nginx -t and reload; Atlas writes only that file",
                knobs.display()
            ));
        }
        if let Some(c) = self.conflicts.get(knob.name()) {
            let list: Vec<String> = c.iter().map(|(n, at)| format!("{n} at {at}")).collect();
            return Some(format!(
                "the configuration sets {} in the block that includes {}; a second one from \
                 Atlas would be refused (nginx: is duplicate) or not take effect: move {} into \
                 the knobs file or delete {}, so {} is Atlas's to set",
                list.join(", "),
                knobs.display(),
                if c.len() == 1 { "it" } else { "them" },
                if c.len() == 1 { "it" } else { "them" },
                knob.name()
            ));
        }
        let carried = MAPPINGS
            .iter()
            .filter(|m| m.knob == knob)
            .flat_map(|m| m.carried);
        for name in carried {
            if let Some(each) = self.around.divergent.get(*name) {
                return Some(divergent(name, each, knobs, knob));
            }
        }
        if knob == ProxyKnob::CacheTtl && self.http_include.is_none() {
            let place = match &self.http {
                Some(at) => format!("inside `http {{` at {at}"),
                None => "inside the http block".into(),
            };
            return Some(format!(
                "cache.ttl in nginx means ignoring the origin's Cache-Control, and Atlas keeps \
                 private and no-store pages out of the cache with a map that lives at http \
                 level: add the line `include {};` {place}",
                http_knobs.display()
            ));
        }
        None
    }
}

/// Why `knob` cannot be written when the blocks that include `knobs`
/// inherit `name` differently (`each`), with the change that would let it.
fn divergent(name: &str, each: &[(Place, Lines)], knobs: &Path, knob: ProxyKnob) -> String {
    format!(
        "{} writes {name} into {}, and a {name} there replaces the ones its block inherits; \
         the blocks that include it inherit different ones ({}), and one file cannot repeat \
         each block's: {}",
        knob.name(),
        knobs.display(),
        each_inherits(name, each),
        let_it(name)
    )
}

/// What lets a `name` its includes' blocks inherit differently be written.
fn let_it(name: &str) -> String {
    format!(
        "write the {name} lines each of those blocks needs into the block itself \
         (they add up with the include's), then run nginx -t and reload"
    )
}

/// Each include with the `name` lines its block inherits.
fn each_inherits(name: &str, each: &[(Place, Lines)]) -> String {
    let list: Vec<String> = each
        .iter()
        .map(|(at, lines)| {
            let lines: Vec<String> = lines
                .iter()
                .map(|args| format!("`{name} {};`", args.join(" ")))
                .collect();
            let what = if lines.is_empty() {
                "nothing".to_string()
            } else {
                lines.join(" ")
            };
            format!("the block of the include at {at} inherits {what}")
        })
        .collect();
    list.join("; ")
}

/// A duration in nginx's syntax (`500ms`, `60s`, `1h30m`, `10` = seconds).
pub fn nginx_time(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit] {
            "ms" => {
                total += Duration::from_millis(n);
                rest = rest[unit..].trim_start();
                continue;
            }
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "M" => 2_592_000,
            "y" => 31_536_000,
            _ => return None,
        };
        total += Duration::from_secs(n * secs);
        rest = rest[unit..].trim_start();
    }
    Some(total)
}

/// A duration as nginx reads it: whole seconds, else milliseconds.
fn to_nginx(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The directives of `name` in force in the innermost block of `chain`
/// that sets it (nginx's inheritance: a block that sets a directive does
/// not inherit it).
fn effective<'a>(chain: &[&'a Directive], name: &str) -> Vec<&'a Directive> {
    for b in chain.iter().rev() {
        let here: Vec<&Directive> = level(b.block.as_deref().unwrap_or_default())
            .into_iter()
            .filter(|d| d.name == name)
            .collect();
        if !here.is_empty() {
            return here;
        }
    }
    Vec::new()
}

/// The directives of [`CARRIED`] that the innermost block of `chain` (the
/// one with the include) inherits and does not set, each with its
/// directives' arguments. Its own accumulate with the include's.
fn inherited(chain: &[&Directive], knobs: &Path) -> BTreeMap<&'static str, Lines> {
    let Some((inner, outer)) = chain.split_last() else {
        return BTreeMap::new();
    };
    let own: Vec<&Directive> = level(inner.block.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|d| d.at.file != knobs)
        .collect();
    CARRIED
        .into_iter()
        .filter(|name| !own.iter().any(|d| d.name == *name))
        .filter_map(|name| {
            let from_outer: Lines = effective(outer, name)
                .iter()
                .map(|d| d.args.clone())
                .collect();
            (!from_outer.is_empty()).then_some((name, from_outer))
        })
        .collect()
}

fn args_of(ds: &[&Directive]) -> Vec<String> {
    ds.iter().flat_map(|d| d.args.iter().cloned()).collect()
}

fn flag(chain: &[&Directive], name: &str) -> bool {
    effective(chain, name)
        .last()
        .and_then(|d| d.args.first())
        .is_some_and(|a| a == "on")
}

/// The time `proxy_cache_valid` gives a 200: the first entry whose codes
/// include 200 (`any`, or none written, which means 200 301 302).
fn ttl_for_200(ds: &[&Directive]) -> Option<Duration> {
    ds.iter().find_map(|d| {
        let (time, codes) = d.args.split_last()?;
        let matches = codes.is_empty() || codes.iter().any(|c| c == "200" || c == "any");
        matches.then(|| nginx_time(time)).flatten()
    })
}

fn values(cfg: &Config, chain: &[&Directive], knobs: &Path) -> Value {
    let state = cfg.text(knobs).map(read_state).unwrap_or_default();
    let ignored = args_of(&effective(chain, "proxy_ignore_headers"));
    let stale = args_of(&effective(chain, "proxy_cache_use_stale"));
    // nginx serves stale without a bound: the state line keeps the value
    // Atlas set, else "on"
    let bounded = |knob: ProxyKnob, on: bool| match state.get(knob.name()) {
        Some(v) if on => v.clone(),
        _ if on => json!("on (nginx sets no bound)"),
        _ => json!("0s"),
    };
    let swr = bounded(
        ProxyKnob::CacheStaleWhileRevalidate,
        stale.iter().any(|a| a == "updating") && flag(chain, "proxy_cache_background_update"),
    );
    let sie = bounded(
        ProxyKnob::CacheStaleIfError,
        stale.iter().any(|a| a == "error"),
    );
    let ttl = ttl_for_200(&effective(chain, "proxy_cache_valid"))
        .map(|d| json!(atlas_vocab::duration::format(d)))
        .unwrap_or(Value::Null);
    let mut cache = Map::new();
    cache.insert("ttl".into(), ttl);
    cache.insert("lock".into(), json!(flag(chain, "proxy_cache_lock")));
    cache.insert(
        "ignore_set_cookie".into(),
        json!(ignored.iter().any(|h| h.eq_ignore_ascii_case("set-cookie"))),
    );
    cache.insert("stale_while_revalidate".into(), swr);
    cache.insert("stale_if_error".into(), sie);
    cache.insert("sort_query".into(), json!(false));
    cache.insert(
        "ignore_cache_control".into(),
        json!(ignored
            .iter()
            .any(|h| h.eq_ignore_ascii_case("cache-control"))),
    );
    let upstream = effective(chain, "proxy_pass")
        .last()
        .and_then(|d| d.args.first())
        .map(|p| upstream_url(cfg, p))
        .unwrap_or(Value::Null);
    json!({ "upstream": upstream, "cache": cache })
}

/// `proxy_pass`'s URL, with an `upstream` block's name replaced by its
/// first server (`http://origin` → `http://127.0.0.1:3000`), so the
/// healer can probe it; the argument as written when it holds variables.
fn upstream_url(cfg: &Config, pass: &str) -> Value {
    let Some((scheme, rest)) = pass.split_once("://") else {
        return json!(pass);
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let group = find_all(&cfg.root, &|d| {
        d.name == "upstream" && d.block.is_some() && d.args.first().is_some_and(|a| a == host)
    });
    let server = group.first().and_then(|f| {
        level(f.directive.block.as_deref()?)
            .into_iter()
            .find(|d| d.name == "server")
            .and_then(|d| d.args.first().cloned())
    });
    match server {
        Some(s) if s.contains(':') => json!(format!("{scheme}://{s}")),
        Some(s) => json!(format!(
            "{scheme}://{s}:{}",
            if scheme == "https" { 443 } else { 80 }
        )),
        None => json!(format!("{scheme}://{host}")),
    }
}

/// The upstream in nginx's "host not found in upstream \"NAME:PORT\"" error,
/// as a URL the healer can probe (`http://NAME:PORT`).
pub fn unresolved_upstream(nginx_error: &str) -> Option<String> {
    let rest = nginx_error.split("host not found in upstream \"").nth(1)?;
    let host = rest.split('"').next()?;
    Some(if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    })
}

/// The managed knobs recorded in an include's text (empty when it has none).
pub fn read_state(text: &str) -> Managed {
    text.lines()
        .find_map(|l| l.strip_prefix(STATE))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// What the include's block already has, which the include's text must
/// respect ([`Layout::around`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Around {
    /// Auxiliary directives the user's block sets already (left out).
    pub given: Vec<String>,
    /// Directives of [`CARRIED`] that the block inherits and does not set:
    /// each inherited directive's arguments. A block that sets one of them
    /// drops what it inherited, so the include repeats these beside its own.
    pub inherited: BTreeMap<String, Lines>,
    /// Directives of [`CARRIED`] that the blocks including the knobs file
    /// inherit differently: each include, with what its block inherits
    /// (nothing, when it sets its own). The one file cannot repeat what
    /// each block would drop, so none of them is written.
    pub divergent: BTreeMap<String, Vec<(Place, Lines)>>,
}

/// Directives nginx takes from an enclosing block only while the block sets
/// none of them: one in the include would drop the inherited ones.
/// The first two are sets of flags (merged into one line), the others lists.
pub const CARRIED: [&str; 4] = [
    "proxy_ignore_headers",
    "proxy_cache_use_stale",
    "proxy_hide_header",
    "proxy_no_cache",
];

/// `proxy_cache_use_stale`'s words for `cache.stale_if_error`: a refused
/// or failed connection, a timeout, and the origin's own 5xx answers.
pub const STALE_IF_ERROR: [&str; 6] = [
    "error", "timeout", "http_500", "http_502", "http_503", "http_504",
];

/// The include's text for `managed`: a header, the state line, and each
/// knob's directives with the knob named beside them, with what `around`
/// says the block needs kept.
///
/// # Errors
/// A knob that is not Atlas's to write in nginx, or a value of the wrong
/// type, named.
pub fn render(managed: &Managed, around: &Around) -> Result<String, String> {
    let mut out = String::from(
        "# Managed by Atlas (atlas heal / atlas gate --nginx-conf). Each change is checked\n\
         # with nginx -t before a reload; the version before it is kept as <this file>.prev.\n\
         # Edits here are overwritten by the next change: set the values with Atlas.\n",
    );
    out.push_str(STATE);
    out.push_str(&serde_json::to_string(managed).expect("a map of JSON values serializes"));
    out.push('\n');
    // (directive, arguments, why), in knob order
    let mut lines: Vec<(&str, Vec<String>, String)> = Vec::new();
    let aux = |name: &str| !around.given.iter().any(|g| g == name);
    let words = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    for (name, v) in managed {
        let knob = ProxyKnob::parse(name).ok_or_else(|| format!("{name} is not a knob"))?;
        if let Some(why) = inexpressible(knob) {
            return Err(format!("{name}: {why}"));
        }
        let bool_of = || {
            v.as_bool()
                .ok_or_else(|| format!("{name} must be true or false, not {v}"))
        };
        let duration_of = || {
            v.as_str()
                .and_then(|s| atlas_vocab::duration::parse(s).ok())
                .ok_or_else(|| format!("{name} must be a duration such as \"60s\", not {v}"))
        };
        let said = |what: &str| format!("{name} = {v}{what}");
        match knob {
            ProxyKnob::CacheIgnoreSetCookie => {
                if bool_of()? {
                    lines.push((
                        "proxy_ignore_headers",
                        words(&["Set-Cookie"]),
                        said(": store answers that set a cookie"),
                    ));
                    lines.push((
                        "proxy_hide_header",
                        words(&["Set-Cookie"]),
                        said(": never replay one visitor's cookie to another"),
                    ));
                }
            }
            ProxyKnob::CacheLock => {
                let on = bool_of()?;
                lines.push((
                    "proxy_cache_lock",
                    words(&[if on { "on" } else { "off" }]),
                    said(""),
                ));
                if on {
                    for d in ["proxy_cache_lock_timeout", "proxy_cache_lock_age"] {
                        if aux(d) {
                            lines.push((d, words(&["5s"]), said("")));
                        }
                    }
                }
            }
            ProxyKnob::CacheTtl => {
                let d = duration_of()?;
                lines.push((
                    "proxy_cache_valid",
                    vec!["200".into(), to_nginx(d)],
                    said(""),
                ));
                lines.push((
                    "proxy_ignore_headers",
                    words(&["Cache-Control", "Expires"]),
                    said(": the TTL above, not the origin's"),
                ));
                lines.push((
                    "proxy_no_cache",
                    vec![PRIVATE_VAR.into()],
                    said(": but never store what the origin marks private or no-store"),
                ));
            }
            ProxyKnob::CacheStaleWhileRevalidate => {
                if !duration_of()?.is_zero() {
                    lines.push((
                        "proxy_cache_use_stale",
                        words(&["updating"]),
                        said(": serve stale while one request refreshes (nginx sets no bound)"),
                    ));
                    if aux("proxy_cache_background_update") {
                        lines.push(("proxy_cache_background_update", words(&["on"]), said("")));
                    }
                }
            }
            ProxyKnob::CacheStaleIfError => {
                if !duration_of()?.is_zero() {
                    lines.push((
                        "proxy_cache_use_stale",
                        words(&STALE_IF_ERROR),
                        said(": serve the stored copy when the origin fails (nginx sets no bound)"),
                    ));
                }
            }
            ProxyKnob::CacheSortQuery | ProxyKnob::Upstream => unreachable!("inexpressible"),
        }
    }
    // what a directive here would drop from the enclosing blocks, kept
    for name in CARRIED {
        if !lines.iter().any(|(n, ..)| *n == name) {
            continue;
        }
        if let Some(each) = around.divergent.get(name) {
            return Err(format!(
                "{name}: the blocks that include the knobs file inherit different ones \
                 ({}), and a {name} in it would replace them: {}",
                each_inherits(name, each),
                let_it(name)
            ));
        }
        for args in around.inherited.get(name).into_iter().flatten() {
            lines.insert(
                0,
                (
                    name,
                    args.clone(),
                    "inherited: kept, as a directive here replaces it".into(),
                ),
            );
        }
    }
    let flags = &CARRIED[..2];
    let mut written: Vec<(&str, Vec<String>)> = Vec::new();
    for (i, (name, args, why)) in lines.iter().enumerate() {
        if flags.contains(name) {
            // one line of every flag, where it first appears
            if lines[..i].iter().any(|(n, ..)| n == name) {
                continue;
            }
            let mut all: Vec<String> = Vec::new();
            for (_, a, _) in lines.iter().filter(|(n, ..)| n == name) {
                for w in a {
                    if !all.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                        all.push(w.clone());
                    }
                }
            }
            let whys: Vec<&str> = lines
                .iter()
                .filter(|(n, ..)| n == name)
                .map(|(.., w)| w.as_str())
                .collect();
            out.push_str(&format!(
                "{name} {};  # {}\n",
                all.join(" "),
                whys.join("; ")
            ));
            continue;
        }
        if written.iter().any(|(n, a)| n == name && a == args) {
            continue;
        }
        written.push((name, args.clone()));
        out.push_str(&format!("{name} {};  # {why}\n", args.join(" ")));
    }
    Ok(out)
}

/// The http-level include: the map that tells private answers apart.
pub fn render_http() -> String {
    format!(
        "# Managed by Atlas (atlas heal / atlas gate --nginx-conf): belongs inside http {{ }}.\n\
         # {PRIVATE_VAR} is 1 when the origin's Cache-Control says private or no-store; the\n\
         # knobs file's proxy_no_cache keeps those answers out of the cache.\n\
         map $upstream_http_cache_control {} {{\n    default 0;\n    \"~*(^|[ ,])(private|no-store)\" 1;\n}}\n",
        PRIVATE_VAR
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const KNOBS: &str = "/c/atlas-knobs.conf";
    const HTTP: &str = "/c/atlas-knobs-http.conf";

    fn dump(location: &str, knobs: &str) -> String {
        format!(
            "# configuration file /c/nginx.conf:\nhttp {{\n  include /c/atlas-knobs-http.conf;\n  upstream origin {{ server 127.0.0.1:3000; }}\n  proxy_cache_valid 200 1s;\n  server {{\n    proxy_cache_lock on;\n    location / {{\n      proxy_pass http://origin;\n{location}\n    }}\n  }}\n}}\n\n# configuration file {HTTP}:\n{}\n\n# configuration file {KNOBS}:\n{knobs}\n\n",
            render_http()
        )
    }

    fn layout(location: &str, knobs: &str) -> Layout {
        let c = Config::from_dump(Path::new("/c/nginx.conf"), &dump(location, knobs)).unwrap();
        Layout::of(&c, Path::new(KNOBS), Path::new(HTTP))
    }

    #[test]
    fn values_are_read_where_the_include_is_with_inheritance() {
        let l = layout(
            "      proxy_ignore_headers Cache-Control;\n      include atlas-knobs.conf;",
            "",
        );
        assert_eq!(l.includes.len(), 1);
        assert_eq!(l.includes[0].to_string(), "/c/nginx.conf:10");
        // ttl from http level, lock from server level, the rest defaults
        assert_eq!(l.values["cache"]["ttl"], json!("1s"));
        assert_eq!(l.values["cache"]["lock"], json!(true));
        assert_eq!(l.values["cache"]["ignore_set_cookie"], json!(false));
        assert_eq!(l.values["cache"]["ignore_cache_control"], json!(true));
        assert_eq!(l.values["cache"]["stale_while_revalidate"], json!("0s"));
        assert_eq!(l.values["upstream"], json!("http://127.0.0.1:3000"));
        assert!(l.conflicts.is_empty());
        assert_eq!(
            l.unable(ProxyKnob::CacheTtl, Path::new(KNOBS), Path::new(HTTP)),
            None
        );
    }

    #[test]
    fn the_includes_own_directives_take_effect_and_add_to_bitmasks() {
        let m: Managed = [
            ("cache.ignore_set_cookie".to_string(), json!(true)),
            ("cache.ttl".to_string(), json!("1m")),
            ("cache.stale_while_revalidate".to_string(), json!("30s")),
        ]
        .into_iter()
        .collect();
        let text = render(&m, &Around::default()).unwrap();
        assert_eq!(read_state(&text), m, "the state line reads back");
        let l = layout(
            "      proxy_ignore_headers Expires;\n      include atlas-knobs.conf;",
            &text,
        );
        assert_eq!(l.values["cache"]["ignore_set_cookie"], json!(true));
        assert_eq!(l.values["cache"]["ttl"], json!("1m"));
        // nginx has no bound on serving stale; the state line keeps Atlas's
        assert_eq!(l.values["cache"]["stale_while_revalidate"], json!("30s"));
        assert_eq!(l.values["cache"]["stale_if_error"], json!("0s"));
    }

    #[test]
    fn stale_if_error_and_while_revalidate_share_one_use_stale_line() {
        let m: Managed = [
            ("cache.stale_while_revalidate".to_string(), json!("30s")),
            ("cache.stale_if_error".to_string(), json!("1m")),
        ]
        .into_iter()
        .collect();
        let text = render(&m, &Around::default()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("proxy_cache_use_stale"))
            .collect();
        // one line, or nginx says "is duplicate"
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].starts_with(
                "proxy_cache_use_stale error timeout http_500 http_502 http_503 http_504 updating;"
            ),
            "{text}"
        );
        let l = layout("      include atlas-knobs.conf;", &text);
        assert_eq!(l.values["cache"]["stale_if_error"], json!("1m"));
        assert_eq!(l.values["cache"]["stale_while_revalidate"], json!("30s"));
        // the user's own `error`, without a value from Atlas
        let l = layout(
            "      proxy_cache_use_stale error;\n      include atlas-knobs.conf;",
            "",
        );
        assert_eq!(
            l.values["cache"]["stale_if_error"],
            json!("on (nginx sets no bound)")
        );
        // off is no line at all
        let off: Managed = [("cache.stale_if_error".to_string(), json!("0s"))]
            .into_iter()
            .collect();
        let text = render(&off, &Around::default()).unwrap();
        assert!(!text.contains("proxy_cache_use_stale"), "{text}");
    }

    #[test]
    fn a_missing_include_names_the_line_to_add_and_the_block() {
        let l = layout("", "");
        let why = l
            .unable(
                ProxyKnob::CacheIgnoreSetCookie,
                Path::new(KNOBS),
                Path::new(HTTP),
            )
            .unwrap();
        assert!(
            why.contains("`include /c/atlas-knobs.conf;` inside `location / {` at /c/nginx.conf:7"),
            "{why}"
        );
        assert!(why.contains("proxy_pass (/c/nginx.conf:8)"), "{why}");
    }

    #[test]
    fn a_directive_the_users_block_sets_is_a_conflict_with_its_line() {
        let l = layout(
            "      proxy_cache_valid 200 5s;\n      proxy_cache_lock_timeout 1s;\n      include atlas-knobs.conf;",
            "",
        );
        let why = l
            .unable(ProxyKnob::CacheTtl, Path::new(KNOBS), Path::new(HTTP))
            .unwrap();
        assert!(
            why.contains("proxy_cache_valid at /c/nginx.conf:9"),
            "{why}"
        );
        // an auxiliary directive is left to the user's own value, not a conflict
        assert_eq!(
            l.unable(ProxyKnob::CacheLock, Path::new(KNOBS), Path::new(HTTP)),
            None
        );
        assert_eq!(l.around.given, vec!["proxy_cache_lock_timeout".to_string()]);
        let m: Managed = [("cache.lock".to_string(), json!(true))]
            .into_iter()
            .collect();
        let text = render(&m, &l.around).unwrap();
        assert!(text.contains("proxy_cache_lock on;"));
        assert!(!text.contains("proxy_cache_lock_timeout"), "{text}");
        assert!(text.contains("proxy_cache_lock_age 5s;"));
    }

    #[test]
    fn knobs_nginx_cannot_express_are_said_so() {
        let l = layout("      include atlas-knobs.conf;", "");
        let why = l
            .unable(ProxyKnob::CacheSortQuery, Path::new(KNOBS), Path::new(HTTP))
            .unwrap();
        assert!(why.contains("cannot sort query parameters"), "{why}");
        let m: Managed = [("cache.sort_query".to_string(), json!(true))]
            .into_iter()
            .collect();
        assert!(render(&m, &Around::default())
            .unwrap_err()
            .contains("cannot sort"));
    }

    #[test]
    fn ttl_needs_the_http_level_map() {
        let c = Config::from_dump(
            Path::new("/c/nginx.conf"),
            "# configuration file /c/nginx.conf:\nhttp {\n  server {\n    location / { proxy_pass http://o:8000; include atlas-knobs.conf; }\n  }\n}\n\n",
        )
        .unwrap();
        let l = Layout::of(&c, Path::new(KNOBS), &PathBuf::from(HTTP));
        let why = l
            .unable(ProxyKnob::CacheTtl, Path::new(KNOBS), Path::new(HTTP))
            .unwrap();
        assert!(
            why.contains("`include /c/atlas-knobs-http.conf;` inside `http {` at /c/nginx.conf:1"),
            "{why}"
        );
        assert_eq!(
            l.unable(ProxyKnob::CacheLock, Path::new(KNOBS), Path::new(HTTP)),
            None
        );
        assert_eq!(l.values["upstream"], json!("http://o:8000"));
    }

    #[test]
    fn what_a_directive_in_the_include_would_drop_is_carried_into_it() {
        let d = format!(
            "# configuration file /c/nginx.conf:\nhttp {{\n  server {{\n    proxy_ignore_headers Cache-Control Expires;\n    proxy_hide_header X-Powered-By;\n    proxy_cache_use_stale error timeout;\n    location / {{\n      proxy_pass http://o:1;\n      proxy_no_cache $cookie_session;\n      include atlas-knobs.conf;\n    }}\n  }}\n}}\n\n# configuration file {KNOBS}:\n\n"
        );
        let c = Config::from_dump(Path::new("/c/nginx.conf"), &d).unwrap();
        let l = Layout::of(&c, Path::new(KNOBS), Path::new(HTTP));
        let m: Managed = [
            ("cache.ignore_set_cookie".to_string(), json!(true)),
            ("cache.stale_while_revalidate".to_string(), json!("30s")),
        ]
        .into_iter()
        .collect();
        let text = render(&m, &l.around).unwrap();
        let directives: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  #").next().unwrap())
            .collect();
        assert_eq!(
            directives,
            [
                "proxy_hide_header X-Powered-By;",
                "proxy_cache_use_stale error timeout updating;",
                "proxy_ignore_headers Cache-Control Expires Set-Cookie;",
                "proxy_hide_header Set-Cookie;",
                "proxy_cache_background_update on;",
            ],
            "{text}"
        );
        // proxy_no_cache is the block's own: it adds up with the include's
        assert!(!l.around.inherited.contains_key("proxy_no_cache"));
        // read back, nginx's values where the include is are the same as before, plus the heal
        let with = d.replace(
            &format!("# configuration file {KNOBS}:\n"),
            &format!("# configuration file {KNOBS}:\n{text}"),
        );
        let c = Config::from_dump(Path::new("/c/nginx.conf"), &with).unwrap();
        let after = Layout::of(&c, Path::new(KNOBS), Path::new(HTTP));
        assert_eq!(after.values["cache"]["ignore_cache_control"], json!(true));
        assert_eq!(after.values["cache"]["ignore_set_cookie"], json!(true));
    }

    fn unable(l: &Layout, knob: ProxyKnob) -> Option<String> {
        l.unable(knob, Path::new(KNOBS), Path::new(HTTP))
    }

    /// Two servers include the knobs file in `location /`: `outer` at http
    /// level, `first` in the first server, `own` in each location.
    fn two_servers(outer: &str, first: &str, own: &str) -> Layout {
        let d = format!(
            "# configuration file /c/nginx.conf:\nhttp {{\n  include /c/atlas-knobs-http.conf;\n{outer}\n  server {{\n    listen 8001;\n{first}\n    location / {{\n      proxy_pass http://o:1;\n      include atlas-knobs.conf;\n{own}\n    }}\n  }}\n  server {{\n    listen 8002;\n    location / {{\n      proxy_pass http://o:2;\n      include atlas-knobs.conf;\n{own}\n    }}\n  }}\n}}\n\n# configuration file {KNOBS}:\n\n"
        );
        let c = Config::from_dump(Path::new("/c/nginx.conf"), &d).unwrap();
        Layout::of(&c, Path::new(KNOBS), Path::new(HTTP))
    }

    /// The knobs file is one text for every block that includes it. When
    /// those blocks inherit a directive differently, a line of it in the
    /// file would give the first block's to the second (a header one
    /// server hides, leaked by the other), so the knobs that write it are
    /// refused, naming each block's, and the file is never rendered so.
    #[test]
    fn blocks_that_inherit_differently_refuse_a_knob_that_would_replace_it() {
        let l = two_servers("", "    proxy_hide_header X-Internal;", "");
        assert_eq!(l.includes.len(), 2);
        assert!(l.around.inherited.is_empty(), "{:?}", l.around);
        let why = unable(&l, ProxyKnob::CacheIgnoreSetCookie).unwrap();
        assert!(
            why.contains("the block of the include at /c/nginx.conf:9 inherits `proxy_hide_header X-Internal;`; the block of the include at /c/nginx.conf:17 inherits nothing"),
            "{why}"
        );
        assert!(why.contains("into the block itself"), "{why}");
        // knobs that write no proxy_hide_header are free
        for k in [ProxyKnob::CacheLock, ProxyKnob::CacheStaleIfError] {
            assert_eq!(unable(&l, k), None, "{k:?}");
        }
        let m = |k: &str, v: Value| -> Managed { [(k.to_string(), v)].into_iter().collect() };
        let err = render(&m("cache.ignore_set_cookie", json!(true)), &l.around).unwrap_err();
        assert!(err.starts_with("proxy_hide_header: "), "{err}");
        // naming each block and the way out, as the refusal of the knob does
        assert!(
            err.contains("the block of the include at /c/nginx.conf:17 inherits nothing")
                && err.contains("into the block itself"),
            "{err}"
        );
        assert!(render(&m("cache.stale_if_error", json!("60s")), &l.around).is_ok());

        // what the refusal says to do: each block with lines of its own,
        // so none inherits any
        let l = two_servers(
            "",
            "    proxy_hide_header X-Internal;",
            "      proxy_hide_header X-Internal;",
        );
        assert!(l.around.divergent.is_empty(), "{:?}", l.around);
        assert!(l.around.inherited.is_empty(), "{:?}", l.around);
        assert_eq!(unable(&l, ProxyKnob::CacheIgnoreSetCookie), None);
    }

    /// What every block that includes the knobs file inherits alike is
    /// repeated in it, as for one block.
    #[test]
    fn blocks_that_inherit_alike_have_it_repeated() {
        let l = two_servers("  proxy_hide_header X-Internal;", "", "");
        assert!(l.around.divergent.is_empty(), "{:?}", l.around);
        assert_eq!(
            l.around.inherited["proxy_hide_header"],
            vec![vec!["X-Internal".to_string()]]
        );
        assert_eq!(unable(&l, ProxyKnob::CacheIgnoreSetCookie), None);
    }

    /// Each knob's `carried` lists every directive of CARRIED its lines can
    /// write: what `unable` checks is what `render` writes.
    #[test]
    fn each_knob_says_which_carried_directives_it_writes() {
        for m in MAPPINGS {
            let on = match m.knob {
                ProxyKnob::CacheTtl
                | ProxyKnob::CacheStaleWhileRevalidate
                | ProxyKnob::CacheStaleIfError => json!("60s"),
                _ => json!(true),
            };
            let managed: Managed = [(m.knob.name().to_string(), on)].into_iter().collect();
            let text = render(&managed, &Around::default()).unwrap();
            for name in CARRIED {
                let writes = text.lines().any(|l| l.starts_with(&format!("{name} ")));
                assert_eq!(
                    writes,
                    m.carried.contains(&name),
                    "{:?} and {name}:\n{text}",
                    m.knob
                );
            }
        }
    }

    #[test]
    fn an_unresolved_upstream_is_read_from_nginxs_error() {
        let e = "nginx -T: nginx: [emerg] host not found in upstream \"shop.invalid:3000\" in /c/nginx.conf:12";
        assert_eq!(
            unresolved_upstream(e).as_deref(),
            Some("http://shop.invalid:3000")
        );
        assert_eq!(
            unresolved_upstream("nginx: [emerg] unknown directive"),
            None
        );
    }

    #[test]
    fn nginx_times_read_as_nginx_reads_them() {
        assert_eq!(nginx_time("60s"), Some(Duration::from_secs(60)));
        assert_eq!(nginx_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(nginx_time("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(nginx_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(nginx_time("5x"), None);
        assert_eq!(to_nginx(Duration::from_millis(1500)), "1500ms");
        assert_eq!(to_nginx(Duration::from_secs(60)), "60s");
    }
}

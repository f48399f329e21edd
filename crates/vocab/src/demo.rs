//! The demo app's routes, and the gate's request mix over them: one list
//! that the demo serves, the gate's load requests, the healer probes and
//! Lighthouse audits.

/// One route of the demo app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The path (`/keys`).
    pub path: &'static str,
    /// Its weight in the gate's mix: of every 40 requests, this many.
    pub weight: u32,
    /// The page's name for audits and reports (`keys`); `None` for an asset.
    pub page: Option<&'static str>,
}

/// Every route, pages first: the gate's mix is 90 % pages (four of weight
/// 9) and 10 % assets (two of weight 2).
pub const ROUTES: [Route; 6] = [
    Route {
        path: "/",
        weight: 9,
        page: Some("home"),
    },
    Route {
        path: "/keys",
        weight: 9,
        page: Some("keys"),
    },
    Route {
        path: "/playground",
        weight: 9,
        page: Some("playground"),
    },
    Route {
        path: "/metrics",
        weight: 9,
        page: Some("metrics"),
    },
    Route {
        path: "/static/app.js",
        weight: 2,
        page: None,
    },
    Route {
        path: "/static/app.css",
        weight: 2,
        page: None,
    },
];

/// The pages among [`ROUTES`].
pub fn pages() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(|r| r.page.is_some())
}

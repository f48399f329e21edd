//! # atlas-demo
//!
//! The upstream `atlas gate` runs when the user gives no target: a small web
//! app with the routes of a typical site and switches to misbehave the way
//! real apps do, so the cache, the healer and the tests have something real
//! to work on.
//!
//! | route | body | headers |
//! |---|---|---|
//! | `/` | HTML, ~4 KB | `Cache-Control: public, max-age=0` |
//! | `/keys` | JSON, ~2.5 KB | same |
//! | `/playground` | HTML, ~8 KB | same |
//! | `/metrics` | JSON, ~2.5 KB | same |
//! | `/static/app.js`, `/static/app.css` | ~7.5 KB, ~3.6 KB | `Cache-Control: public, max-age=3600` |
//! | `/health` | `ok` | `no-store` |
//!
//! Dynamic routes cost `work` of CPU each (default 3 ms, spent on the
//! blocking pool so the runtime stays responsive): 500 uncached requests per
//! second need 1.5 cores, cached traffic costs nothing.
//!
//! Switches ([`Switches`]), changeable while it runs with
//! `PUT /_demo/switches` or [`DemoHandle::set_switches`]: `Set-Cookie` on
//! routes, `Cache-Control: private` on routes, `Vary: *` on routes, an added
//! delay, a percentage of 503s, and `down` (connections are closed without an
//! answer).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let app = atlas_demo::DemoApp::bind("127.0.0.1:0".parse().unwrap(), Default::default()).await?;
//! println!("demo app on http://{}", app.local_addr());
//! app.run(std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod app;
mod error;
mod pages;

pub use app::{DemoApp, DemoHandle, Switches};
pub use error::{Error, Result};
pub use pages::{page, ROUTES};

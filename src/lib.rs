//! Atlas: prove that a web service behind a micro-cache holds its performance
//! gate. This facade re-exports the Atlas crates so the workspace's top-level
//! `examples/` and `benches/` can use them all; a project of yours would
//! depend on the crate it needs (`atlas-loadgen`, ...) directly.
#![deny(missing_docs)]

pub use atlas_cacheproxy as cacheproxy;
pub use atlas_evidence as evidence;
pub use atlas_gate as gate;
pub use atlas_healer as healer;
pub use atlas_loadgen as loadgen;

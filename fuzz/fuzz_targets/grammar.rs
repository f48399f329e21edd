//! The threshold and check grammars (k6's): any line parses or is refused
//! with an error, never a panic; a threshold that parses survives the trip
//! through the spec a results file stores (which replay reads back), and a
//! check through its printed form.
#![no_main]

use atlas_loadgen::{Check, Threshold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Threshold::parse_line(line) {
        let back = Threshold::from_spec(&t.metric.to_string(), &t.to_spec())
            .unwrap_or_else(|e| panic!("{line:?} parsed, but its spec does not: {e}"));
        assert_eq!(
            back, t,
            "{line:?}: the stored spec reads back as another threshold"
        );
    }
    if let Ok(c) = Check::parse(line) {
        let again = Check::parse(&c.to_string())
            .unwrap_or_else(|e| panic!("{line:?} parsed as {c}, which does not: {e}"));
        assert_eq!(again, c, "{line:?}");
    }
});

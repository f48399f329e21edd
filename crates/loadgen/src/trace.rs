//! W3C trace context: the run's trace id and a `traceparent` per request.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A W3C trace id: 16 bytes, written as 32 lowercase hex digits, never all zeros.
///
/// One run has one trace id; every request of the run carries it in its
/// `traceparent` header with a fresh parent id, so the proxy's and the app's
/// logs can be joined to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// A random trace id (from the OS-seeded hasher, the clock and the process id).
    pub fn random() -> Self {
        let mut state = entropy();
        loop {
            let hi = splitmix64(&mut state);
            let lo = splitmix64(&mut state);
            if hi != 0 || lo != 0 {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&hi.to_be_bytes());
                bytes[8..].copy_from_slice(&lo.to_be_bytes());
                return TraceId(bytes);
            }
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for TraceId {
    type Err = Error;

    /// Parses 32 lowercase hex digits, not all zeros. Uppercase is rejected, not
    /// normalized: W3C trace context requires lowercase.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: &str| Error::config("trace_id", format!("{s:?}: {message}"));
        if s.len() != 32 {
            return Err(bad("a trace id is 32 lowercase hex digits"));
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi =
                lower_hex(pair[0]).ok_or_else(|| bad("a trace id is 32 lowercase hex digits"))?;
            let lo =
                lower_hex(pair[1]).ok_or_else(|| bad("a trace id is 32 lowercase hex digits"))?;
            bytes[i] = hi << 4 | lo;
        }
        if bytes == [0; 16] {
            return Err(bad("an all-zero trace id is invalid"));
        }
        Ok(TraceId(bytes))
    }
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Builds `traceparent` values for one trace id without allocating per call.
#[derive(Clone, Debug)]
pub(crate) struct TraceparentBuilder {
    template: [u8; 55],
}

impl TraceparentBuilder {
    pub(crate) fn new(trace: TraceId) -> Self {
        let mut template = *b"00-00000000000000000000000000000000-0000000000000000-01";
        let hex = trace.to_string();
        template[3..35].copy_from_slice(hex.as_bytes());
        TraceparentBuilder { template }
    }

    /// The header for one request: `00-<trace>-<parent>-01`, parent id derived
    /// from `seq` (never zero).
    pub(crate) fn header(&self, seq: u64) -> [u8; 55] {
        let mut state = seq ^ 0x5851_f42d_4c95_7f2d;
        let mut parent = splitmix64(&mut state);
        if parent == 0 {
            parent = 1;
        }
        let mut out = self.template;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in 0..16 {
            let nibble = (parent >> (60 - 4 * i)) & 0xf;
            out[36 + i] = HEX[nibble as usize];
        }
        out
    }
}

/// SplitMix64: a tiny, well-distributed generator used for ids and for
/// deterministic choices derived from an arrival's index.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed from the OS-randomized hasher, the clock and the process id.
pub(crate) fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_valid_and_differ() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a, b, "two random trace ids collided");
        let s = a.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<TraceId>().unwrap(), a, "display/parse round trip");
    }

    #[test]
    fn rejects_uppercase_zero_and_wrong_length() {
        assert!("0af7651916cd43dd8448eb211c80319c"
            .parse::<TraceId>()
            .is_ok());
        assert!("0AF7651916CD43DD8448EB211C80319C"
            .parse::<TraceId>()
            .is_err());
        assert!("00000000000000000000000000000000"
            .parse::<TraceId>()
            .is_err());
        assert!("0af7651916cd43dd8448eb211c80319"
            .parse::<TraceId>()
            .is_err());
        assert!("0af7651916cd43dd8448eb211c80319g"
            .parse::<TraceId>()
            .is_err());
    }

    #[test]
    fn traceparent_has_w3c_shape_and_fresh_parent() {
        let trace: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
        let b = TraceparentBuilder::new(trace);
        let h1 = String::from_utf8(b.header(1).to_vec()).unwrap();
        let h2 = String::from_utf8(b.header(2).to_vec()).unwrap();
        assert!(
            h1.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{h1}"
        );
        assert!(h1.ends_with("-01"), "{h1}");
        assert_ne!(h1[36..52], h2[36..52], "parent ids must differ per request");
        assert_ne!(&h1[36..52], "0000000000000000");
    }
}

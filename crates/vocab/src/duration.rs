//! Durations written as strings (`"60s"`, `"1m30s"`, `"500ms"`): one
//! parser, one printer, and serde helpers for `#[serde(with = ...)]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration a setting may take: 100 years. Longer ones would
/// overflow the clock when added to the current time.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses `60s`, `1m30s`, `500ms`, `2h` (surrounding spaces ignored), at
/// most [`MAX`].
///
/// # Errors
/// A message naming the value, for the caller to wrap with its setting.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 60s, 1m30s or 500ms"))?;
    if d > MAX {
        return Err(format!("{s:?} is longer than 100 years"));
    }
    Ok(d)
}

/// Prints a duration as [`parse`] reads it back (`1m 30s`, `500ms`).
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "atlas_vocab::duration::string")]` for a `Duration`.
pub mod string {
    use super::*;

    /// Writes the duration as a string.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Reads a duration string.
    ///
    /// # Errors
    /// Not a string, or not a duration (the message names the value).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "atlas_vocab::duration::option")]` for an
/// `Option<Duration>` (`null` or absent is `None`).
pub mod option {
    use super::*;

    /// Writes the duration as a string, or `null`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads a duration string, or `null`.
    ///
    /// # Errors
    /// Not a string, or not a duration (the message names the value).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_bounds() {
        for (s, d) in [
            ("60s", Duration::from_secs(60)),
            (" 1m30s ", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
        ] {
            assert_eq!(parse(s), Ok(d));
            assert_eq!(parse(&format(d)), Ok(d), "prints what it reads");
        }
        assert!(parse("5 parsecs").unwrap_err().contains("\"5 parsecs\""));
        assert!(parse("200years").unwrap_err().contains("100 years"));
    }
}

//! Heals that last: a change the admin API accepted (`PUT /config`) is
//! written back to the config file the proxy was started with, so a SIGHUP
//! (which re-reads the file) or a restart keeps it.
//!
//! Only the knobs whose values changed are written, each where the file
//! has it (or in its table, added at the end); comments, order and layout
//! are kept (toml_edit). The file is replaced atomically (a temporary file,
//! then a rename) and the bytes it held before are kept as `FILE.prev`.
//! Faults (`fault.*`) are never written: an experiment's fault ends with
//! the process, whatever stops the experiment.

use std::path::{Path, PathBuf};

use serde_json::Value;
use toml_edit::{DocumentMut, Item, TableLike};

use crate::error::{Error, Result};

/// Where accepted changes are written, one writer at a time.
#[derive(Debug)]
pub struct Persist {
    path: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl Persist {
    /// Changes go to `path`, a TOML config file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Persist {
            path: path.into(),
            lock: std::sync::Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the knobs that differ between two configs (as the admin API
    /// serializes them) into the file.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] when the file cannot be read, parsed or replaced;
    /// it is then as it was.
    pub fn write(&self, previous: &Value, current: &Value) -> Result<()> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let bad = |message: String| Error::ConfigFile {
            path: self.path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| bad(e.to_string()))?;
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| bad(e.to_string()))?;
        let mut changed = Vec::new();
        diff(&mut Vec::new(), previous, current, &mut changed);
        // faults are for now: a restart (or a SIGHUP) never brings one back
        changed.retain(|(path, _)| path.first().map(String::as_str) != Some("fault"));
        if changed.is_empty() {
            return Ok(());
        }
        for (path, value) in &changed {
            set(doc.as_table_mut(), path, value).map_err(bad)?;
        }
        let prev = PathBuf::from(format!("{}.prev", self.path.display()));
        replace(&prev, text.as_bytes()).map_err(|e| bad(format!("{}: {e}", prev.display())))?;
        replace(&self.path, doc.to_string().as_bytes()).map_err(|e| bad(e.to_string()))
    }
}

/// Each knob (a path of keys) whose value differs from `a` in `b`, with its
/// value in `b` (`Null` when it is gone).
fn diff(at: &mut Vec<String>, a: &Value, b: &Value, out: &mut Vec<(Vec<String>, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, vb) in y {
                at.push(k.clone());
                diff(at, x.get(k).unwrap_or(&Value::Null), vb, out);
                at.pop();
            }
            for k in x.keys().filter(|k| !y.contains_key(*k)) {
                at.push(k.clone());
                out.push((at.clone(), Value::Null));
                at.pop();
            }
        }
        _ if a != b => out.push((at.clone(), b.clone())),
        _ => {}
    }
}

/// Sets (or, for `Null`, removes) the knob at `path` in `table`, keeping
/// the comments around a value it replaces.
fn set(
    table: &mut dyn TableLike,
    path: &[String],
    value: &Value,
) -> std::result::Result<(), String> {
    let (key, rest) = path.split_first().ok_or("an empty knob path")?;
    if !rest.is_empty() {
        if value.is_null() && table.get(key).is_none() {
            return Ok(());
        }
        let item = table
            .entry(key)
            .or_insert_with(|| Item::Table(toml_edit::Table::new()));
        let inner = item
            .as_table_like_mut()
            .ok_or_else(|| format!("{key} is not a table in the file"))?;
        return set(inner, rest, value);
    }
    if value.is_null() {
        table.remove(key);
        return Ok(());
    }
    let new = toml_value(value).ok_or_else(|| format!("{key}: {value} has no TOML form"))?;
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
    Ok(())
}

/// A JSON value as TOML (no null inside arrays or objects).
fn toml_value(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut a = toml_edit::Array::new();
            for i in items {
                a.push(toml_value(i)?);
            }
            toml_edit::Value::Array(a)
        }
        Value::Object(m) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, i) in m {
                t.insert(k, toml_value(i)?);
            }
            toml_edit::Value::InlineTable(t)
        }
        Value::Null => return None,
    })
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it,
/// synced, then renamed over it.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_knobs_are_written_where_the_file_has_them_comments_kept() {
        let dir = std::env::temp_dir().join(format!("atlas-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        let text = "# the shop's micro-cache\nupstream = \"http://127.0.0.1:3000\"\n\n[cache]\n# one minute, as agreed\nttl = \"1s\" # was too short\nlock = true\n";
        std::fs::write(&file, text).unwrap();
        let before = json!({"upstream": "http://127.0.0.1:3000", "cache": {"ttl": "1s", "lock": true, "ignore_set_cookie": false}});
        let after = json!({"upstream": "http://127.0.0.1:3000", "cache": {"ttl": "1m", "lock": true, "ignore_set_cookie": true}});
        Persist::new(&file).write(&before, &after).unwrap();
        let now = std::fs::read_to_string(&file).unwrap();
        assert!(now.contains("# the shop's micro-cache"), "{now}");
        assert!(
            now.contains("# one minute, as agreed\nttl = \"1m\" # was too short"),
            "{now}"
        );
        assert!(now.contains("ignore_set_cookie = true"), "{now}");
        assert_eq!(
            std::fs::read_to_string(dir.join("proxy.toml.prev")).unwrap(),
            text
        );
        // what it wrote reads back as the change
        let doc: toml::Value = toml::from_str(&now).unwrap();
        assert_eq!(doc["cache"]["ttl"].as_str(), Some("1m"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_cannot_be_parsed_is_left_as_it_is() {
        let dir = std::env::temp_dir().join(format!("atlas-persist-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "[cache\n").unwrap();
        let e = Persist::new(&file)
            .write(&json!({"a": 1}), &json!({"a": 2}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy.toml"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[cache\n");
        assert!(!dir.join("proxy.toml.prev").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn faults_are_never_written() {
        let dir = std::env::temp_dir().join(format!("atlas-persist-fault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        let text = "upstream = \"http://127.0.0.1:3000\"\n[cache]\nttl = \"1s\"\n";
        std::fs::write(&file, text).unwrap();
        let before = json!({"cache": {"ttl": "1s"}, "fault": {"rules": [], "seed": 0}});
        let during = json!({"cache": {"ttl": "1s"}, "fault": {"rules": [{"kind": "upstream-down"}], "seed": 7}});
        Persist::new(&file).write(&before, &during).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        // with another knob beside it, only that knob is written
        let after =
            json!({"cache": {"ttl": "2s"}, "fault": {"rules": [{"kind": "reset"}], "seed": 7}});
        Persist::new(&file).write(&during, &after).unwrap();
        let now = std::fs::read_to_string(&file).unwrap();
        assert!(
            now.contains("ttl = \"2s\"") && !now.contains("fault"),
            "{now}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! `opt_fields` projection, the way Asana applies it: only the requested dotted paths plus
//! `gid` come back; a bare nested object (`assignee`) comes back compact (`gid`,
//! `resource_type`); a missing field (a hidden email) is simply absent; `null` stays `null`.
//!
//! Handlers build one "rich" JSON value per object (every field, nested objects expanded)
//! and this module cuts it down, so `assignee.email` works without per-field code.

use serde_json::{Map, Value};

/// Parsed `opt_fields`: each path split on `.`. `None` means the parameter was absent.
pub(crate) fn parse(opt_fields: Option<&str>) -> Option<Vec<Vec<String>>> {
    let raw = opt_fields?;
    let paths: Vec<Vec<String>> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect();
    (!paths.is_empty()).then_some(paths)
}

/// Projects `full` onto `paths`.
pub(crate) fn select(full: &Value, paths: &[Vec<String>]) -> Value {
    match full {
        Value::Array(items) => Value::Array(items.iter().map(|i| select(i, paths)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            if let Some(gid) = map.get("gid") {
                out.insert("gid".into(), gid.clone());
            }
            // Group the paths by their first segment, keeping first-seen order.
            let mut groups: Vec<(&str, Vec<Vec<String>>, bool)> = Vec::new();
            for path in paths {
                let Some((head, rest)) = path.split_first() else {
                    continue;
                };
                let idx = match groups.iter().position(|(k, _, _)| k == head) {
                    Some(i) => i,
                    None => {
                        groups.push((head.as_str(), Vec::new(), false));
                        groups.len() - 1
                    }
                };
                if rest.is_empty() {
                    groups[idx].2 = true;
                } else {
                    groups[idx].1.push(rest.to_vec());
                }
            }
            for (key, sub, bare) in groups {
                let Some(value) = map.get(key) else {
                    continue;
                };
                let selected = match (bare, sub.is_empty()) {
                    (true, true) => compact(value),
                    (false, _) => select(value, &sub),
                    (true, false) => merge(compact(value), select(value, &sub)),
                };
                out.insert(key.to_string(), selected);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// A nested resource as Asana returns it when only its name is requested.
fn compact(v: &Value) -> Value {
    match v {
        Value::Object(map) if map.contains_key("gid") => {
            let mut out = Map::new();
            for k in ["gid", "resource_type"] {
                if let Some(x) = map.get(k) {
                    out.insert(k.into(), x.clone());
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(compact).collect()),
        other => other.clone(),
    }
}

fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut x), Value::Object(y)) => {
            x.extend(y);
            Value::Object(x)
        }
        (Value::Array(x), Value::Array(y)) => {
            Value::Array(x.into_iter().zip(y).map(|(a, b)| merge(a, b)).collect())
        }
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_like_asana() {
        let task = json!({
            "gid": "1", "resource_type": "task", "name": "T", "completed": false,
            "assignee": {"gid": "2", "resource_type": "user", "name": "U", "email": "u@x"},
            "projects": [{"gid": "3", "resource_type": "project", "name": "P"}],
        });
        let p = parse(Some("assignee.email,name")).unwrap();
        assert_eq!(
            select(&task, &p),
            json!({"gid": "1", "assignee": {"gid": "2", "email": "u@x"}, "name": "T"})
        );
        let p = parse(Some("assignee,projects.name")).unwrap();
        assert_eq!(
            select(&task, &p),
            json!({"gid": "1", "assignee": {"gid": "2", "resource_type": "user"},
                   "projects": [{"gid": "3", "name": "P"}]})
        );
        let unassigned = json!({"gid": "1", "assignee": null});
        assert_eq!(
            select(&unassigned, &parse(Some("assignee.email")).unwrap()),
            json!({"gid": "1", "assignee": null})
        );
        let hidden = json!({"gid": "1", "assignee": {"gid": "2", "name": "U"}});
        assert_eq!(
            select(&hidden, &parse(Some("assignee.email")).unwrap()),
            json!({"gid": "1", "assignee": {"gid": "2"}})
        );
        assert!(parse(Some(" , ")).is_none());
    }
}

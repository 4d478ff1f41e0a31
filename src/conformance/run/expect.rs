//! What a step expects of a frame, and whether a frame meets it.

use bytes::Bytes;

use super::failure::show_bytes;
use crate::conformance::session::ExpectFrame;
use crate::conformance::vector::Blob;
use crate::wire::frame::Frame;

/// The member of `value` at a dotted `path`: `*` is an object's only
/// member, a number an array's index.
fn json_at<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, key| match (v, key) {
        (serde_json::Value::Object(map), "*") if map.len() == 1 => map.values().next(),
        (serde_json::Value::Array(items), index) => index.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(key),
    })
}
/// The bytes of a vector's byte string; one that cannot be read is empty.
pub(super) fn blob(b: &Blob) -> Bytes {
    Bytes::from(b.to_bytes().unwrap_or_default())
}

impl ExpectFrame {
    /// Human form of the expectation.
    pub fn describe(&self) -> String {
        let mut parts = vec!["frame".to_string()];
        if let Some(s) = self.status {
            parts.push(format!("status {s}"));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path {}", show_bytes(&blob(p))));
        }
        if let Some(c) = self.channel {
            parts.push(format!("channel {c}"));
        }
        if let Some(d) = &self.data {
            parts.push(format!("data {}", show_bytes(&blob(d))));
        }
        if let Some(j) = &self.json {
            parts.push(format!("JSON with {}", serde_json::to_string(j).unwrap_or_default()));
        }
        if let Some(k) = &self.json_keys {
            parts.push(format!("JSON with members {k:?}"));
        }
        if let Some(k) = &self.json_absent {
            parts.push(format!("JSON without members {k:?}"));
        }
        if let Some(m) = &self.metadata {
            let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            parts.push(format!("a metadata block with {}", entries.join(", ")));
        }
        if let Some(b) = &self.after_block {
            parts.push(format!("{:?} after the metadata block", String::from_utf8_lossy(&blob(b))));
        }
        if let Some(c) = self.code {
            parts.push(format!("error answer with code {c}"));
        }
        if let Some(id) = &self.cites {
            parts.push(format!("data citing [{id}]"));
        }
        if let Some(lens) = &self.json_len {
            let lens: Vec<String> = lens.iter().map(|(k, v)| format!("{k} of {v} entries")).collect();
            parts.push(format!("JSON with arrays {}", lens.join(", ")));
        }
        if let Some(sums) = &self.json_sum_at_least {
            let sums: Vec<String> = sums.iter().map(|(k, v)| format!("{k} adding up to {v} or more")).collect();
            parts.push(format!("JSON with arrays {}", sums.join(", ")));
        }
        if let Some(grown) = &self.json_increase {
            let grown: Vec<String> = grown.iter().map(|(k, v)| format!("{k} +{v} or more")).collect();
            parts.push(format!("JSON grown since {:?}: {}", self.since.as_deref().unwrap_or("?"), grown.join(", ")));
        }
        if let Some(delta) = &self.json_delta {
            let delta: Vec<String> = delta.iter().map(|(k, v)| format!("{k} +{v}")).collect();
            parts.push(format!(
                "JSON changed since {:?} by exactly: {}",
                self.since.as_deref().unwrap_or("?"),
                delta.join(", ")
            ));
        }
        if let Some(arrays) = &self.json_nonzero_within {
            parts.push(format!(
                "JSON arrays {} non-zero only where {:?}'s are",
                arrays.join(", "),
                self.since.as_deref().unwrap_or("?")
            ));
        }
        if let Some(paths) = &self.json_paths {
            let paths: Vec<String> = paths.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            parts.push(format!("JSON with {}", paths.join(", ")));
        }
        parts.join(" ")
    }

    /// Whether `frame` matches, given the JSON answers captured so far in
    /// the case (for `json_increase`).
    pub fn matches_with(&self, frame: &Frame, captured: &std::collections::HashMap<String, serde_json::Value>) -> bool {
        let json = || serde_json::from_slice::<serde_json::Value>(&frame.data).ok();
        let lens_ok = self.json_len.as_ref().is_none_or(|lens| {
            json().is_some_and(|got| {
                lens.iter().all(|(path, want)| {
                    json_at(&got, path).and_then(|v| v.as_array()).map(|a| a.len() as i64) == want.as_integer()
                })
            })
        });
        let sums_ok = self.json_sum_at_least.as_ref().is_none_or(|sums| {
            json().is_some_and(|got| {
                sums.iter().all(|(path, least)| {
                    let items = json_at(&got, path).and_then(|v| v.as_array());
                    let sum = items.map(|a| a.iter().filter_map(|v| v.as_u64()).sum::<u64>());
                    matches!((sum, least.as_integer()), (Some(sum), Some(least)) if sum as i128 >= i128::from(least))
                })
            })
        });
        let before = self.since.as_ref().and_then(|name| captured.get(name));
        let changed = |table: &toml::Table, ok: fn(i64, i64) -> bool| match (json(), before) {
            (Some(now), Some(before)) => table.iter().all(|(path, by)| {
                let (Some(a), Some(b), Some(by)) = (
                    json_at(before, path).and_then(|v| v.as_i64()),
                    json_at(&now, path).and_then(|v| v.as_i64()),
                    by.as_integer(),
                ) else {
                    return false;
                };
                ok(b - a, by)
            }),
            _ => false,
        };
        let grown_ok = self.json_increase.as_ref().is_none_or(|t| changed(t, |grew, by| grew >= by));
        let delta_ok = self.json_delta.as_ref().is_none_or(|t| changed(t, |grew, by| grew == by));
        let within_ok = self.json_nonzero_within.as_ref().is_none_or(|arrays| match (json(), before) {
            (Some(now), Some(before)) => arrays.iter().all(|path| {
                let (Some(now), Some(before)) =
                    (json_at(&now, path).and_then(|v| v.as_array()), json_at(before, path).and_then(|v| v.as_array()))
                else {
                    return false;
                };
                let nonzero = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_i64()).is_some_and(|n| n != 0);
                now.len() == before.len() && (0..now.len()).all(|i| !nonzero(now.get(i)) || nonzero(before.get(i)))
            }),
            _ => false,
        });
        let paths_ok = self.json_paths.as_ref().is_none_or(|paths| {
            json().is_some_and(|got| {
                paths.iter().all(|(path, want)| serde_json::to_value(want).ok().as_ref() == json_at(&got, path))
            })
        });
        lens_ok && sums_ok && grown_ok && delta_ok && within_ok && paths_ok && self.matches(frame)
    }

    /// Whether a `metadata` and `after_block` expectation holds: the data
    /// starts with a well-formed metadata block (`[EXT-18]`) holding each
    /// named key with its value (`true`: any value; `false`: the key is
    /// absent), followed by `after_block`.
    fn metadata_matches(&self, frame: &Frame) -> bool {
        if self.metadata.is_none() && self.after_block.is_none() {
            return true;
        }
        let max = usize::from(u16::MAX);
        let Ok((metadata, rest)) = crate::proto::extensions::Metadata::split(&frame.data, max) else { return false };
        let entries_ok = self.metadata.as_ref().is_none_or(|want| {
            want.iter().all(|(key, value)| match value {
                toml::Value::Boolean(present) => metadata.get(key).is_some() == *present,
                toml::Value::String(text) => metadata.get(key) == Some(text.as_str()),
                _ => false,
            })
        });
        entries_ok && self.after_block.as_ref().is_none_or(|b| blob(b) == rest)
    }

    /// Whether `frame` matches (captures aside).
    pub fn matches(&self, frame: &Frame) -> bool {
        let json = || serde_json::from_slice::<serde_json::Value>(&frame.data).ok();
        self.cites.as_ref().is_none_or(|id| {
            let cited = format!("[{id}]");
            frame.data.windows(cited.len()).any(|w| w == cited.as_bytes())
        }) && self.status.is_none_or(|s| s == frame.status.byte())
            && self.path.as_ref().is_none_or(|p| blob(p) == frame.path)
            && self.channel.is_none_or(|c| c == frame.channel)
            && self.data.as_ref().is_none_or(|d| blob(d) == frame.data)
            && self.json.as_ref().is_none_or(|want| {
                let Some(got) = json() else { return false };
                want.iter().all(|(k, v)| serde_json::to_value(v).ok().as_ref() == got.get(k))
            })
            && self
                .json_keys
                .as_ref()
                .is_none_or(|keys| json().is_some_and(|got| keys.iter().all(|k| json_at(&got, k).is_some())))
            && self
                .json_absent
                .as_ref()
                .is_none_or(|keys| json().is_some_and(|got| keys.iter().all(|k| json_at(&got, k).is_none())))
            && self.metadata_matches(frame)
            && self.code.is_none_or(|code| {
                json().is_some_and(|got| {
                    got.get("code").and_then(|c| c.as_i64()) == Some(code)
                        && got.get("message").is_some_and(|m| m.is_string())
                })
            })
    }
}

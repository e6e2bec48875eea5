//! A JSON value model that serialises byte-for-byte like Go's `encoding/json`.
//!
//! Cog builds its schema from Go maps (keys emitted sorted) and a few
//! insertion-ordered maps; both kinds are represented here by [`Obj`] with a
//! flag. Strings are escaped like Go (HTML-safe), floats formatted like Go.

use std::fmt::Write as _;

/// A JSON value with Go serialisation semantics.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A Go `int64`.
    Int(i64),
    /// A Go `float64`.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object.
    Obj(Obj),
}

/// A JSON object: either sorted on output (a Go map) or insertion ordered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj {
    entries: Vec<(String, Json)>,
    ordered: bool,
}

impl Obj {
    /// A Go `map[string]any`: keys are written in sorted order.
    pub fn map() -> Self {
        Obj {
            entries: Vec::new(),
            ordered: false,
        }
    }

    /// An insertion-ordered map (cog's `orderedMapAny`).
    pub fn ordered() -> Self {
        Obj {
            entries: Vec::new(),
            ordered: true,
        }
    }

    /// Inserts or replaces `key`; a new key goes to the end.
    pub fn set(&mut self, key: &str, value: Json) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Builder form of [`Obj::set`].
    pub fn with(mut self, key: &str, value: Json) -> Self {
        self.set(key, value);
        self
    }

    /// Looks up `key`.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Mutable lookup of `key`.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Entries in stored (insertion) order.
    pub fn entries(&self) -> &[(String, Json)] {
        &self.entries
    }

    /// Mutable entries in stored order.
    pub fn entries_mut(&mut self) -> &mut Vec<(String, Json)> {
        &mut self.entries
    }

    /// True when the object has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in output order (sorted for Go maps).
    fn output_order(&self, force_sorted: bool) -> Vec<&(String, Json)> {
        let mut refs: Vec<&(String, Json)> = self.entries.iter().collect();
        if force_sorted || !self.ordered {
            refs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        }
        refs
    }
}

impl Json {
    /// Shorthand for a string value.
    pub fn str(s: &str) -> Json {
        Json::Str(s.to_string())
    }

    /// The object inside, if this is one.
    pub fn as_obj(&self) -> Option<&Obj> {
        match self {
            Json::Obj(o) => Some(o),
            _ => None,
        }
    }

    /// The mutable object inside, if this is one.
    pub fn as_obj_mut(&mut self) -> Option<&mut Obj> {
        match self {
            Json::Obj(o) => Some(o),
            _ => None,
        }
    }

    /// Compact output exactly like Go's `json.Marshal`.
    pub fn to_go_compact(&self) -> String {
        let mut out = String::new();
        write_compact(self, &mut out);
        out
    }

    /// Output like Go's `json.MarshalIndent(v, "", "  ")` of a value that went
    /// through `json.Unmarshal` into `any` first: every object sorted, every
    /// number a float64.
    pub fn to_go_indented_generic(&self) -> String {
        let mut out = String::new();
        write_indented(self, &mut out, 0);
        out
    }

    /// Converts a serde_json value (e.g. a file read from disk) into this model,
    /// keeping key order as an ordered object.
    pub fn from_serde(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Json::Int(i),
                None => Json::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Json::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Json::Arr(items.iter().map(Json::from_serde).collect())
            }
            serde_json::Value::Object(map) => {
                let mut obj = Obj::ordered();
                for (k, v) in map {
                    obj.set(k, Json::from_serde(v));
                }
                Json::Obj(obj)
            }
        }
    }
}

fn write_compact(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Json::Float(f) => out.push_str(&go_float(*f)),
        Json::Str(s) => write_go_string(s, out),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(item, out);
            }
            out.push(']');
        }
        Json::Obj(obj) => {
            out.push('{');
            for (i, (k, v)) in obj.output_order(false).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_compact(v, out);
            }
            out.push('}');
        }
    }
}

fn push_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_indented(value: &Json, out: &mut String, depth: usize) {
    match value {
        Json::Int(i) => out.push_str(&go_float(*i as f64)),
        Json::Arr(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_indent(out, depth + 1);
                write_indented(item, out, depth + 1);
            }
            push_indent(out, depth);
            out.push(']');
        }
        Json::Obj(obj) if !obj.is_empty() => {
            out.push('{');
            for (i, (k, v)) in obj.output_order(true).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_indent(out, depth + 1);
                write_go_string(k, out);
                out.push_str(": ");
                write_indented(v, out, depth + 1);
            }
            push_indent(out, depth);
            out.push('}');
        }
        other => write_compact(other, out),
    }
}

/// Formats a float64 like Go's `encoding/json` (shortest representation,
/// exponent form below 1e-6 and from 1e21, `e-07` shortened to `e-7`).
pub fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_string();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let formatted = format!("{f:e}");
        let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        let digits = if sign == '+' && digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_string()
        };
        return format!("{mantissa}e{sign}{digits}");
    }
    format!("{f}")
}

/// Writes a JSON string escaped like Go's `encoding/json` with HTML escaping.
pub fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(-0.0), "-0");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1.5e-7), "1.5e-7");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(1.25e300), "1.25e+300");
    }

    #[test]
    fn strings_escape_like_go() {
        let mut out = String::new();
        write_go_string("a<b>&\"\\\n\u{1}é\u{2028}", &mut out);
        assert_eq!(out, "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001é\\u2028\"");
    }

    #[test]
    fn maps_sort_and_ordered_maps_keep_order() {
        let inner = Obj::ordered()
            .with("z", Json::Int(1))
            .with("a", Json::Int(2));
        let outer = Obj::map()
            .with("b", Json::Obj(inner))
            .with("a", Json::Arr(vec![]));
        let v = Json::Obj(outer);
        assert_eq!(v.to_go_compact(), r#"{"a":[],"b":{"z":1,"a":2}}"#);
        assert_eq!(
            v.to_go_indented_generic(),
            "{\n  \"a\": [],\n  \"b\": {\n    \"a\": 2,\n    \"z\": 1\n  }\n}"
        );
    }
}

//! The effective-config JSON of the `run.cog.config` label (§1.9), written
//! byte-for-byte like Go's `encoding/json` of cog's `Config` struct.

use super::{Build, Config, RunItem, WeightDecl, WeightSource};

/// A JSON string literal escaped like Go's `encoding/json` (HTML-safe:
/// `<`, `>`, `&`, U+2028 and U+2029 become `\u…` escapes).
pub fn go_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds a JSON object field by field, skipping empty ("omitempty") ones.
struct Object {
    fields: Vec<String>,
}

impl Object {
    fn new() -> Object {
        Object { fields: Vec::new() }
    }
    fn raw(&mut self, key: &str, value: String) {
        self.fields
            .push(format!("{}:{}", go_json_string(key), value));
    }
    fn text(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.raw(key, go_json_string(value));
        }
    }
    fn opt_text(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.text(key, v);
        }
    }
    fn list(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            self.raw(key, string_array(values));
        }
    }
    fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

fn string_array(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| go_json_string(v)).collect();
    format!("[{}]", items.join(","))
}

fn build_json(build: &Build) -> String {
    let mut o = Object::new();
    if build.gpu {
        o.raw("gpu", "true".to_string());
    }
    o.text("python_version", &build.python_version);
    o.opt_text("python_requirements", &build.python_requirements);
    o.list("python_packages", &build.python_packages);
    if !build.run.is_empty() {
        let items: Vec<String> = build.run.iter().map(run_item_json).collect();
        o.raw("run", format!("[{}]", items.join(",")));
    }
    o.list("system_packages", &build.system_packages);
    o.list("pre_install", &build.pre_install);
    o.opt_text("cuda", &build.cuda);
    o.opt_text("cudnn", &build.cudnn);
    o.opt_text("sdk_version", &build.sdk_version);
    o.finish()
}

fn run_item_json(item: &RunItem) -> String {
    let mut o = Object::new();
    o.text("command", &item.command);
    if !item.mounts.is_empty() {
        let mounts: Vec<String> = item
            .mounts
            .iter()
            .map(|m| {
                let mut mo = Object::new();
                mo.text("type", &m.kind);
                mo.text("id", &m.id);
                mo.text("target", &m.target);
                mo.finish()
            })
            .collect();
        o.raw("mounts", format!("[{}]", mounts.join(",")));
    }
    o.finish()
}

fn source_json(source: &WeightSource) -> String {
    let mut o = Object::new();
    o.text("uri", &source.uri);
    o.list("include", &source.include);
    o.list("exclude", &source.exclude);
    o.finish()
}

fn weight_json(weight: &WeightDecl) -> String {
    let mut o = Object::new();
    o.raw("name", go_json_string(&weight.name));
    o.raw("target", go_json_string(&weight.target));
    let source = match weight.sources.as_slice() {
        [] => "null".to_string(),
        [one] => source_json(one),
        many => {
            let items: Vec<String> = many.iter().map(source_json).collect();
            format!("[{}]", items.join(","))
        }
    };
    o.raw("source", source);
    o.finish()
}

/// See [`Config::effective_json`].
pub(crate) fn effective_json(config: &Config, decorator_concurrency: Option<i64>) -> String {
    let mut o = Object::new();
    o.raw(
        "build",
        build_json(&config.build.clone().unwrap_or_default()),
    );
    o.opt_text("image", &config.image);
    o.opt_text("model", &config.model);
    o.opt_text("predict", &config.predict);
    o.opt_text("train", &config.train);
    match config.effective_concurrency(decorator_concurrency) {
        Some(max) if max != 0 => o.raw("concurrency", format!("{{\"max\":{max}}}")),
        Some(_) if config.concurrency_max.is_some() => o.raw("concurrency", "{}".to_string()),
        _ => {}
    }
    o.list("environment", &config.environment);
    if !config.weights.is_empty() {
        let items: Vec<String> = config.weights.iter().map(weight_json).collect();
        o.raw("weights", format!("[{}]", items.join(",")));
    }
    o.finish()
}

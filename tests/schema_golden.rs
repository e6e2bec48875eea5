//! Golden tests for static schema generation.
//!
//! Every directory under `fixtures/schema/` (except `_envelope`) is a small
//! Cog project plus `expect.json`, written by hand from cog's rules. The
//! expected document is assembled from the hand-written envelope templates in
//! `fixtures/schema/_envelope/` and the hand-written component fragments, then
//! compared with our output both as parsed JSON and byte for byte.

use std::path::{Path, PathBuf};

use cogpack::schema::{self, SchemaOptions};
use serde_json::{Map, Value};

const VERSION: &str = "0.17.0-test";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/schema exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("expect.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn load_expect(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(name).join("expect.json"))
        .expect("expect.json readable");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}/expect.json: {e}"))
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("serialises")
}

/// Fills a hand-written envelope template with hand-written fragments.
fn expected_single(
    template: &str,
    input: &str,
    output: &Value,
    enums: Option<&Value>,
    streaming: bool,
) -> String {
    let path = fixtures_dir().join("_envelope").join(template);
    let tmpl = std::fs::read_to_string(path).expect("template readable");
    let mut enum_text = String::new();
    if let Some(Value::Object(map)) = enums {
        for (k, v) in map {
            enum_text.push_str(&format!(
                ",{}:{}",
                compact(&Value::String(k.clone())),
                compact(v)
            ));
        }
    }
    let streaming_text = if streaming {
        ",\"x-cog-streaming\":true"
    } else {
        ""
    };
    tmpl.trim_end()
        .replace("@INPUT@", input)
        .replace("@OUTPUT@", &compact(output))
        .replace("@ENUMS@", &enum_text)
        .replace("@STREAMING@", streaming_text)
        .replace("@VERSION@", VERSION)
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// Go's MarshalIndent escapes `<`, `>` and `&`; serde_json does not.
fn go_html_escape(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn expected_combined(expect: &Value) -> String {
    let predict = expected_single(
        "predict.tmpl",
        &compact(&expect["input"]),
        &expect["output"],
        expect.get("enums"),
        false,
    );
    let train = expected_single(
        "train.tmpl",
        &compact(&expect["train_input"]),
        &expect["train_output"],
        expect.get("train_enums"),
        false,
    );
    let mut p: Value = serde_json::from_str(&predict).expect("predict template is JSON");
    let t: Value = serde_json::from_str(&train).expect("train template is JSON");
    for section in [vec!["paths"], vec!["components", "schemas"]] {
        let mut dst = &mut p;
        let mut src = &t;
        for key in &section {
            dst = dst.get_mut(*key).expect("section");
            src = &src[*key];
        }
        for (k, v) in src.as_object().expect("object") {
            let dst_map = dst.as_object_mut().expect("object");
            if !dst_map.contains_key(k) {
                dst_map.insert(k.clone(), v.clone());
            }
        }
    }
    go_html_escape(&serde_json::to_string_pretty(&sort_keys(&p)).expect("serialises"))
}

struct Outcome {
    name: String,
    problem: Option<String>,
}

fn check_fixture(name: &str) -> Outcome {
    let expect = load_expect(name);
    let dir = fixtures_dir().join(name);
    let opts = SchemaOptions {
        sdk_version: VERSION.to_string(),
        literal_enums: expect["literal_enums"].as_bool().unwrap_or(false),
    };
    let result = schema::generate(
        &dir,
        expect["predict"].as_str(),
        expect["train"].as_str(),
        &opts,
    );
    let want_error = expect.get("error").and_then(Value::as_str);
    let problem = match (want_error, result) {
        (Some(want), Err(err)) => check_error(&expect, want, &err),
        (Some(_), Ok(got)) => Some(format!("expected an error, got success:\n{}", got.json)),
        (None, Err(err)) => Some(format!("unexpected error: {err}")),
        (None, Ok(got)) => check_success(&expect, &got),
    };
    Outcome {
        name: name.to_string(),
        problem,
    }
}

fn check_error(expect: &Value, want: &str, err: &schema::SchemaError) -> Option<String> {
    let shown = err.to_string();
    if !shown.contains(want) {
        return Some(format!(
            "error text mismatch\n want substring: {want}\n got: {shown}"
        ));
    }
    if !shown.contains("hint: ") {
        return Some(format!("error has no hint: {shown}"));
    }
    if let Some(line) = expect.get("error_line").and_then(Value::as_u64)
        && err.line != Some(line as usize)
    {
        return Some(format!(
            "error line: want {line}, got {:?} ({shown})",
            err.line
        ));
    }
    if let Some(file) = expect.get("error_file").and_then(Value::as_str)
        && err.file.as_deref() != Some(file)
    {
        return Some(format!("error file: want {file}, got {:?}", err.file));
    }
    None
}

fn check_success(expect: &Value, got: &schema::GeneratedSchema) -> Option<String> {
    let combined = expect.get("train_input").is_some();
    let want = if combined {
        expected_combined(expect)
    } else {
        let template = if expect.get("train").is_some() {
            "train.tmpl"
        } else {
            "predict.tmpl"
        };
        let streaming = expect["streaming"].as_bool().unwrap_or(false);
        let input = match expect.get("input_bytes").and_then(Value::as_str) {
            Some(exact) => exact.to_string(),
            None => compact(&expect["input"]),
        };
        expected_single(
            template,
            &input,
            &expect["output"],
            expect.get("enums"),
            streaming,
        )
    };
    let want_value: Value = serde_json::from_str(&want).expect("expected document is JSON");
    let got_value: Value = match serde_json::from_str(&got.json) {
        Ok(v) => v,
        Err(e) => return Some(format!("output is not JSON ({e}):\n{}", got.json)),
    };
    if want_value != got_value {
        return Some(format!(
            "parsed JSON differs\n want: {want}\n got:  {}",
            got.json
        ));
    }
    if want != got.json {
        return Some(format!(
            "bytes differ (same JSON)\n want: {want}\n got:  {}",
            got.json
        ));
    }
    check_metadata(expect, got)
}

fn check_metadata(expect: &Value, got: &schema::GeneratedSchema) -> Option<String> {
    let want_async = expect["is_async"].as_bool().unwrap_or(false);
    if got.is_async != want_async {
        return Some(format!("is_async: want {want_async}, got {}", got.is_async));
    }
    let want_max = expect["concurrency_max"].as_i64();
    if got.concurrency_max != want_max {
        return Some(format!(
            "concurrency_max: want {want_max:?}, got {:?}",
            got.concurrency_max
        ));
    }
    let want_warnings: Vec<&str> = expect["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if want_warnings
        .iter()
        .any(|w| !got.warnings.iter().any(|g| g.contains(w)))
    {
        return Some(format!(
            "warnings: want {want_warnings:?}, got {:?}",
            got.warnings
        ));
    }
    if expect["warnings_absent"].as_bool() == Some(true) && !got.warnings.is_empty() {
        return Some(format!("unexpected warnings: {:?}", got.warnings));
    }
    None
}

#[test]
fn schema_fixtures_match_hand_written_expectations() {
    let names = fixture_names();
    assert!(
        names.len() >= 40,
        "need at least 40 fixtures, found {}",
        names.len()
    );
    let failures: Vec<Outcome> = names
        .iter()
        .map(|n| check_fixture(n))
        .filter(|o| o.problem.is_some())
        .collect();
    let report: Vec<String> = failures
        .iter()
        .map(|o| format!("--- {}: {}", o.name, o.problem.as_deref().unwrap_or("")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        names.len(),
        report.join("\n")
    );
}

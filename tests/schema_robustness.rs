//! Bad and extreme input for schema generation: syntax errors, missing
//! files, import cycles, huge and deeply nested sources, prebuilt schema
//! files. Each case must end in a clear error or a correct document.

use std::path::Path;

use cogpack::schema::{self, ErrorKind, GeneratedSchema, PrebuiltSource, SchemaOptions};

fn opts() -> SchemaOptions {
    SchemaOptions {
        sdk_version: "0.17.0".to_string(),
        literal_enums: false,
    }
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }
    dir
}

fn doc(json: &str) -> serde_json::Value {
    serde_json::from_str(json).expect("valid JSON")
}

#[test]
fn missing_predictor_file_names_the_path() {
    let dir = project(&[]);
    let err = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts())
        .expect_err("missing file must fail");
    assert_eq!(err.kind, ErrorKind::Io);
    let shown = err.to_string();
    assert!(shown.contains("failed to read predictor source"), "{shown}");
    assert!(shown.contains("predict.py"), "{shown}");
    assert!(shown.contains("hint:"), "{shown}");
}

#[test]
fn no_reference_uses_cogs_words() {
    let dir = project(&[]);
    let err = schema::generate(dir.path(), None, Some(""), &opts()).expect_err("no refs");
    assert_eq!(
        err.message,
        "no predict or train reference found in cog.yaml"
    );
}

#[test]
fn syntax_error_outside_the_target_still_generates_with_a_warning() {
    let src = "from cog import BasePredictor\n\ndef helper(:\n    pass\n\nclass Predictor(BasePredictor):\n    def run(self, x: int) -> int:\n        return x\n";
    let dir = project(&[("predict.py", src)]);
    let got = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts())
        .expect("target parses");
    let v = doc(&got.json);
    assert_eq!(
        v["components"]["schemas"]["Input"]["required"],
        serde_json::json!(["x"])
    );
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("predict.py:3") && w.contains("syntax error")),
        "{:?}",
        got.warnings
    );
}

#[test]
fn syntax_error_that_hides_the_target_is_reported_with_its_line() {
    let src = "from cog import BasePredictor\n\nclass Predictor(BasePredictor\n    def run(self, x: int) -> int:\n        return x\n";
    let dir = project(&[("predict.py", src)]);
    let err = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts())
        .expect_err("broken class");
    let shown = err.to_string();
    assert!(shown.contains("syntax error"), "{shown}");
    assert!(shown.contains("predict.py:"), "{shown}");
}

#[test]
fn binary_garbage_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("predict.py"), garbage).expect("write");
    let result = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts());
    assert!(result.is_err());
}

#[test]
fn import_cycle_between_base_classes_terminates() {
    let a = "from b import B\n\nclass A(B):\n    pass\n";
    let b = "from a import A\n\nclass B(A):\n    pass\n";
    let predict = "from a import A\n\nclass Predictor(A):\n    pass\n";
    let dir = project(&[("a.py", a), ("b.py", b), ("predict.py", predict)]);
    let err = schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts())
        .expect_err("no run method anywhere");
    assert_eq!(err.message, "Predictor must define run() or predict()");
}

#[test]
fn self_importing_module_terminates() {
    let predict = "from predict import Out\nfrom cog import BaseModel\n\nclass Out(BaseModel):\n    x: int\n\ndef predict() -> Out:\n    pass\n";
    let dir = project(&[("predict.py", predict)]);
    let got = schema::generate(dir.path(), Some("predict.py:predict"), None, &opts()).expect("ok");
    let v = doc(&got.json);
    assert_eq!(
        v["components"]["schemas"]["Output"]["required"],
        serde_json::json!(["x"])
    );
}

fn big_predictor(lines: usize) -> String {
    let mut src = String::from("from cog import BaseModel, BasePredictor, Input\n\n");
    let mut i = 0;
    while src.lines().count() + 20 < lines {
        src.push_str(&format!(
            "CONST_{i} = {i}\n\nclass Model{i}(BaseModel):\n    a_{i}: int\n    b_{i}: str = \"x\"\n\ndef helper_{i}(x: int) -> int:\n    return x + {i}\n\n"
        ));
        i += 1;
    }
    src.push_str("class Predictor(BasePredictor):\n    def run(\n        self,\n");
    for p in 0..5 {
        src.push_str(&format!(
            "        p{p}: int = Input(default=CONST_{p}, ge=0),\n"
        ));
    }
    src.push_str("    ) -> Model3:\n        pass\n");
    src
}

#[test]
fn ten_thousand_line_predictor_generates_correctly() {
    let src = big_predictor(10_000);
    assert!(src.lines().count() >= 9_980);
    let dir = project(&[("predict.py", &src)]);
    let got =
        schema::generate(dir.path(), Some("predict.py:Predictor"), None, &opts()).expect("ok");
    let v = doc(&got.json);
    let input = &v["components"]["schemas"]["Input"]["properties"];
    assert_eq!(input["p4"]["default"], serde_json::json!(4));
    assert_eq!(input["p4"]["x-order"], serde_json::json!(4));
    let output = &v["components"]["schemas"]["Output"];
    assert_eq!(output["required"], serde_json::json!(["a_3"]));
}

#[test]
fn deeply_nested_annotation_is_rejected_without_overflow() {
    let depth = 5_000;
    let ann = format!("{}int{}", "list[".repeat(depth), "]".repeat(depth));
    let src = format!("def predict(x: {ann}) -> str:\n    pass\n");
    let dir = project(&[("predict.py", &src)]);
    let err = schema::generate(dir.path(), Some("predict.py:predict"), None, &opts())
        .expect_err("too deep");
    assert_eq!(err.kind, ErrorKind::UnsupportedType, "{err}");
}

#[test]
fn deeply_nested_default_is_rejected_without_overflow() {
    let depth = 5_000;
    let value = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let src = format!("def predict(x: dict = {value}) -> str:\n    pass\n");
    let dir = project(&[("predict.py", &src)]);
    let err = schema::generate(dir.path(), Some("predict.py:predict"), None, &opts())
        .expect_err("too deep");
    assert_eq!(err.kind, ErrorKind::DefaultNotResolvable, "{err}");
}

fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn generated_single(dir: &Path) -> GeneratedSchema {
    schema::generate(dir, Some("predict.py:Predictor"), None, &opts()).expect("generates")
}

const ASYNC_PREDICTOR: &str = "import cog\nfrom cog import BasePredictor\n\nclass Predictor(BasePredictor):\n    @cog.concurrent(max=3)\n    async def run(self, x: int) -> int:\n        return x\n";

#[test]
fn prebuilt_schema_bytes_are_used_verbatim_and_metadata_still_read() {
    let dir = project(&[("predict.py", ASYNC_PREDICTOR)]);
    let ours = generated_single(dir.path());
    let file = write(dir.path(), "schema.json", &format!("{}\n", ours.json));
    for source in [PrebuiltSource::EnvVar, PrebuiltSource::Flag] {
        let got = schema::load_prebuilt(
            &file,
            dir.path(),
            Some("predict.py:Predictor"),
            None,
            source,
            &opts(),
        )
        .expect("valid prebuilt");
        assert_eq!(got.json, format!("{}\n", ours.json));
        assert!(got.is_async);
        assert_eq!(got.concurrency_max, Some(3));
    }
}

#[test]
fn prebuilt_schema_is_still_validated() {
    let dir = project(&[("predict.py", ASYNC_PREDICTOR)]);
    let ours = generated_single(dir.path());
    let broken = ours.json.replace(
        "\"title\":\"X\",\"type\":\"integer\"",
        "\"default\":1,\"minimum\":2,\"title\":\"X\",\"type\":\"integer\"",
    );
    assert_ne!(broken, ours.json, "test setup: replacement applied");
    let file = write(dir.path(), "bad.json", &broken);
    let err = schema::load_prebuilt(&file, dir.path(), None, None, PrebuiltSource::Flag, &opts())
        .expect_err("default violates minimum");
    assert_eq!(err.kind, ErrorKind::InvalidSchema);
    assert!(err.message.contains("minimum"), "{err}");

    let not_json = write(dir.path(), "nojson.json", "{\"openapi\": ");
    let err = schema::load_prebuilt(
        &not_json,
        dir.path(),
        None,
        None,
        PrebuiltSource::Flag,
        &opts(),
    )
    .expect_err("not JSON");
    assert!(
        err.message.starts_with("Failed to load model schema JSON"),
        "{err}"
    );

    let no_info = write(
        dir.path(),
        "noinfo.json",
        "{\"openapi\":\"3.0.2\",\"paths\":{}}",
    );
    let err = schema::load_prebuilt(
        &no_info,
        dir.path(),
        None,
        None,
        PrebuiltSource::Flag,
        &opts(),
    )
    .expect_err("no info");
    assert!(err.message.contains("info"), "{err}");
}

#[test]
fn prebuilt_missing_file_messages_follow_the_source() {
    let dir = project(&[]);
    let missing = dir.path().join("nope.json");
    let env = schema::load_prebuilt(
        &missing,
        dir.path(),
        None,
        None,
        PrebuiltSource::EnvVar,
        &opts(),
    )
    .expect_err("missing");
    assert!(
        env.message
            .starts_with("COG_OPENAPI_SCHEMA: failed to read"),
        "{env}"
    );
    let flag = schema::load_prebuilt(
        &missing,
        dir.path(),
        None,
        None,
        PrebuiltSource::Flag,
        &opts(),
    )
    .expect_err("missing");
    assert!(
        flag.message.starts_with("Failed to read schema file"),
        "{flag}"
    );
}

#[test]
fn prebuilt_with_flag_tolerates_an_unparseable_predictor() {
    let dir = project(&[("predict.py", ASYNC_PREDICTOR)]);
    let ours = generated_single(dir.path());
    std::fs::write(dir.path().join("predict.py"), "def nothing():\n    pass\n").expect("write");
    let file = write(dir.path(), "schema.json", &ours.json);
    let got = schema::load_prebuilt(
        &file,
        dir.path(),
        Some("predict.py:Predictor"),
        None,
        PrebuiltSource::Flag,
        &opts(),
    )
    .expect("flag tolerates");
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("predictor not found")),
        "{:?}",
        got.warnings
    );
    let err = schema::load_prebuilt(
        &file,
        dir.path(),
        Some("predict.py:Predictor"),
        None,
        PrebuiltSource::EnvVar,
        &opts(),
    )
    .expect_err("env var requires the predictor to parse");
    assert_eq!(err.kind, ErrorKind::PredictorNotFound);
}

#[test]
fn effective_concurrency_follows_cog_rules() {
    let dir = project(&[("predict.py", ASYNC_PREDICTOR)]);
    let meta = generated_single(dir.path());
    assert_eq!(
        schema::effective_concurrency(None, Some("3.12"), &meta),
        Ok(Some(3))
    );
    assert_eq!(
        schema::effective_concurrency(Some(8), Some("3.12"), &meta),
        Ok(Some(8))
    );
    assert_eq!(
        schema::effective_concurrency(None, Some("3.10"), &meta),
        Err("concurrency requires Python 3.11 or higher".to_string())
    );
    let sync = GeneratedSchema {
        is_async: false,
        concurrency_max: None,
        ..meta
    };
    assert_eq!(
        schema::effective_concurrency(Some(2), Some("3.12"), &sync),
        Err("concurrency.max > 1 requires an async run() or predict() method".to_string())
    );
    assert_eq!(
        schema::effective_concurrency(None, Some("3.12"), &sync),
        Ok(None)
    );
}

#[test]
fn output_escapes_html_like_go() {
    let src = "from cog import Input\n\ndef predict(x: str = Input(description=\"a <b> & c\")) -> str:\n    pass\n";
    let dir = project(&[("predict.py", src)]);
    let got = schema::generate(dir.path(), Some("predict.py:predict"), None, &opts()).expect("ok");
    assert!(
        got.json
            .contains(r#""description":"a \u003cb\u003e \u0026 c""#),
        "{}",
        got.json
    );
}

#[test]
fn old_pinned_sdk_is_rejected_like_cog() {
    assert!(schema::check_sdk_version(None).is_ok());
    assert!(schema::check_sdk_version(Some("prerelease")).is_ok());
    assert!(schema::check_sdk_version(Some("0.17.0")).is_ok());
    assert!(schema::check_sdk_version(Some("0.18.1rc2")).is_ok());
    let err = schema::check_sdk_version(Some("0.16.9")).expect_err("too old");
    assert_eq!(
        err.message,
        "SDK version 0.16.9 is not supported by static schema generation; use 0.17.0 or newer"
    );
}

#[test]
fn syntax_error_deep_inside_nesting_is_found_without_overflow() {
    let depth = 20_000;
    let value = format!("{}1 +{}", "[".repeat(depth), "]".repeat(depth));
    let src = format!("X = {value}\n\ndef predict(x: int) -> int:\n    pass\n");
    let dir = project(&[("predict.py", &src)]);
    let result = schema::generate(dir.path(), Some("predict.py:predict"), None, &opts());
    match result {
        Ok(got) => assert!(
            got.warnings.iter().any(|w| w.contains("syntax error")),
            "{:?}",
            got.warnings
        ),
        Err(e) => assert!(e.to_string().contains("syntax error"), "{e}"),
    }
}

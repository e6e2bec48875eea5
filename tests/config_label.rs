//! The `run.cog.config` label (spec §1.9) and the default image name (§1.8).

use cogpack::config::{self, Config};
use std::path::Path;

fn load(yaml: &str) -> config::Project {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["predict.py", "train.py"] {
        std::fs::write(dir.path().join(name), "").expect("write");
    }
    std::fs::write(dir.path().join("cog.yaml"), yaml).expect("write");
    config::load(dir.path(), "cog.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn spec_example() {
    let p =
        load("build:\n  gpu: true\n  python_version: \"3.12\"\npredict: predict.py:Predictor\n");
    assert_eq!(
        p.config.effective_json(None),
        r#"{"build":{"gpu":true,"python_version":"3.12","cuda":"11.8","cudnn":"8"},"predict":"predict.py:Predictor"}"#
    );
}

#[test]
fn every_field_in_cogs_order() {
    let yaml = r#"
weights:
  - name: base
    target: /src/weights
    source:
      uri: weights/
      include: ["*.safetensors"]
  - name: extra
    target: /src/extra
    source:
      - uri: hf://org/repo
      - uri: file://./more
        exclude: ["*.md"]
environment:
  - GREETING=<hi & bye>
  - TABS=a	b
concurrency:
  max: 3
train: train.py:Trainer
run: predict.py:Predictor
model: registry.example.com/me/model
build:
  sdk_version: "0.17.0"
  pre_install: [echo pre]
  system_packages: [ffmpeg, libgl1]
  run:
    - echo "one"
    - command: cat /run/secrets/tok
      mounts:
        - {type: secret, id: tok, target: /run/secrets/tok}
  python_packages: [numpy==1.26.4]
  python_version: "3.12.1"
"#;
    let p = load(yaml);
    let expected = concat!(
        r#"{"build":{"python_version":"3.12.1","python_packages":["numpy==1.26.4"],"#,
        r#""run":[{"command":"echo \"one\""},{"command":"cat /run/secrets/tok","mounts":[{"type":"secret","id":"tok","target":"/run/secrets/tok"}]}],"#,
        r#""system_packages":["ffmpeg","libgl1"],"pre_install":["echo pre"],"sdk_version":"0.17.0"},"#,
        r#""model":"registry.example.com/me/model","predict":"predict.py:Predictor","train":"train.py:Trainer","#,
        r#""concurrency":{"max":3},"environment":["GREETING=\u003chi \u0026 bye\u003e","TABS=a\tb"],"#,
        r#""weights":[{"name":"base","target":"/src/weights","source":{"uri":"weights/","include":["*.safetensors"]}},"#,
        r#"{"name":"extra","target":"/src/extra","source":[{"uri":"hf://org/repo"},{"uri":"file://./more","exclude":["*.md"]}]}]}"#
    );
    assert_eq!(p.config.effective_json(None), expected);
    let parsed: serde_json::Value = serde_json::from_str(expected).expect("valid JSON");
    assert_eq!(parsed["environment"][0], "GREETING=<hi & bye>");
}

#[test]
fn decorator_concurrency_fills_in_when_yaml_has_none() {
    let p = load("build:\n  python_version: \"3.12\"\nrun: predict.py:Predictor\n");
    assert_eq!(
        p.config.effective_json(Some(4)),
        r#"{"build":{"python_version":"3.12"},"predict":"predict.py:Predictor","concurrency":{"max":4}}"#
    );
    assert_eq!(
        p.config.effective_json(None),
        r#"{"build":{"python_version":"3.12"},"predict":"predict.py:Predictor"}"#
    );
    let p = load(
        "build:\n  python_version: \"3.12\"\nrun: predict.py:Predictor\nconcurrency:\n  max: 2\n",
    );
    assert_eq!(p.config.effective_concurrency(Some(8)), Some(2));
    assert!(
        p.config
            .effective_json(Some(8))
            .ends_with(r#""concurrency":{"max":2}}"#)
    );
}

#[test]
fn empty_config_has_an_empty_build() {
    assert_eq!(Config::default().effective_json(None), r#"{"build":{}}"#);
    let p = load("image: r8.im/me/thing\n");
    assert_eq!(
        p.config.effective_json(None),
        r#"{"build":{},"image":"r8.im/me/thing"}"#
    );
}

#[test]
fn go_string_escaping() {
    assert_eq!(
        config::go_json_string("<a & b>"),
        r#""\u003ca \u0026 b\u003e""#
    );
    assert_eq!(
        config::go_json_string("line\u{2028}sep\u{2029}"),
        r#""line\u2028sep\u2029""#
    );
    assert_eq!(
        config::go_json_string("\u{1}\u{8}\u{c}\r\n\t\"\\é"),
        "\"\\u0001\\b\\f\\r\\n\\t\\\"\\\\é\""
    );
}

#[test]
fn default_image_names() {
    assert_eq!(
        config::default_image_name(Path::new("/home/me/My Model")),
        "cog-my-model"
    );
    assert_eq!(
        config::default_image_name(Path::new("/x/cog-hello")),
        "cog-hello"
    );
    assert_eq!(
        config::default_image_name(Path::new("/x/Hello_World.v2")),
        "cog-helloworldv2"
    );
    let long = format!("/x/{}", "a".repeat(40));
    assert_eq!(
        config::default_image_name(Path::new(&long)),
        format!("cog-{}", "a".repeat(26))
    );
    let long_cog = format!("/x/cog-{}", "b".repeat(40));
    assert_eq!(
        config::default_image_name(Path::new(&long_cog)),
        format!("cog-{}", "b".repeat(22))
    );
    assert_eq!(
        config::default_image_name(Path::new("/x/ünïcode")),
        "cog-ncode"
    );
}

//! YAML → raw config structs (every field optional, like cog's `configFile`),
//! plus a key tree with line numbers used for unknown-key warnings and for
//! pointing problems at lines.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// cog.yaml as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawFile {
    pub build: Option<RawBuild>,
    pub image: Option<String>,
    pub model: Option<String>,
    pub run: Option<String>,
    pub predict: Option<String>,
    pub train: Option<String>,
    pub concurrency: Option<RawConcurrency>,
    pub environment: Option<Vec<String>>,
    pub weights: Option<Vec<RawWeight>>,
}

/// `build:` as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawBuild {
    pub gpu: Option<bool>,
    pub python_version: Option<String>,
    pub python_requirements: Option<String>,
    pub python_packages: Option<Vec<String>>,
    pub run: Option<Vec<RawRunItem>>,
    pub system_packages: Option<Vec<String>>,
    pub pre_install: Option<Vec<String>>,
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub sdk_version: Option<String>,
}

/// `concurrency:` as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConcurrency {
    pub max: Option<i64>,
    #[allow(dead_code)]
    pub default_target: Option<i64>,
}

/// A `build.run` item: a string or `{command, mounts}`.
#[derive(Debug, Default)]
pub(crate) struct RawRunItem {
    pub command: String,
    pub mounts: Vec<RawMount>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRunObject {
    #[serde(default)]
    command: String,
    #[serde(default)]
    mounts: Vec<RawMount>,
}

/// A mount of a run item.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawMount {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub target: String,
}

impl<'de> Deserialize<'de> for RawRunItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RunItemVisitor;
        impl<'de> Visitor<'de> for RunItemVisitor {
            type Value = RawRunItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or a mapping with `command` and `mounts`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRunItem, E> {
                Ok(RawRunItem {
                    command: v.to_string(),
                    mounts: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRunItem, A::Error> {
                let object = RawRunObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawRunItem {
                    command: object.command,
                    mounts: object.mounts,
                })
            }
        }
        deserializer.deserialize_any(RunItemVisitor)
    }
}

/// A `weights:` entry as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawWeight {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub source: RawSourceList,
}

/// `source:` — one object or a list of objects.
#[derive(Debug, Default)]
pub(crate) struct RawSourceList {
    pub items: Vec<RawSource>,
    pub is_list: bool,
}

/// One weight source object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSource {
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl<'de> Deserialize<'de> for RawSourceList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = RawSourceList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source object {uri, include, exclude} or a list of them")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawSourceList, E> {
                Ok(RawSourceList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSourceList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<RawSource>()? {
                    items.push(item);
                }
                Ok(RawSourceList {
                    items,
                    is_list: true,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSourceList, A::Error> {
                let item = RawSource::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSourceList {
                    items: vec![item],
                    is_list: false,
                })
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

/// Options shared by every parse: duplicate keys are errors (cog's decoder
/// rejects them too), numbers and booleans read into text fields as written.
fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options
}

/// A YAML syntax or type error with its 1-based line when known.
pub(crate) struct YamlError {
    pub message: String,
    pub line: Option<usize>,
}

fn yaml_error(error: serde_saphyr::Error) -> YamlError {
    let line = error
        .location()
        .map(|l| l.line() as usize)
        .filter(|l| *l > 0);
    let message = error.without_snippet().to_string();
    YamlError { message, line }
}

/// Parses the typed view of cog.yaml. Empty or comment-only input is an empty config.
pub(crate) fn parse_raw(text: &str) -> Result<RawFile, YamlError> {
    if is_blank_document(text) {
        return Ok(RawFile::default());
    }
    let parsed: Option<RawFile> =
        serde_saphyr::from_str_with_options(text, options()).map_err(yaml_error)?;
    Ok(parsed.unwrap_or_default())
}

fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// The shape of the document: mappings with their keys and lines, sequences.
#[derive(Debug, Default)]
pub(crate) enum KeyTree {
    /// A mapping: (key, line, value) in document order.
    Map(Vec<(String, usize, KeyTree)>),
    /// A sequence of values with their lines.
    Seq(Vec<(usize, KeyTree)>),
    /// Anything else.
    #[default]
    Scalar,
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTreeVisitor)
    }
}

struct KeyTreeVisitor;

macro_rules! scalar_visits {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _v: $ty) -> Result<KeyTree, E> { Ok(KeyTree::Scalar) })*
    };
}

/// A mapping key of any scalar kind, kept as text.
struct AnyKey(String);

impl<'de> Deserialize<'de> for AnyKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(AnyKey)
    }
}

impl<'de> Visitor<'de> for KeyTreeVisitor {
    type Value = KeyTree;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    scalar_visits!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64,
        visit_str: &str, visit_i128: i128, visit_u128: u128, visit_bytes: &[u8]);
    fn visit_unit<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<KeyTree>>()? {
            items.push((item.referenced.line() as usize, item.value));
        }
        Ok(KeyTree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<AnyKey>>()? {
            let value = map.next_value::<KeyTree>()?;
            entries.push((key.value.0, key.referenced.line() as usize, value));
        }
        Ok(KeyTree::Map(entries))
    }
}

/// Parses the key tree; `None` when the document cannot be read that way
/// (the typed parse reports the actual error).
pub(crate) fn parse_key_tree(text: &str) -> Option<KeyTree> {
    if is_blank_document(text) {
        return Some(KeyTree::Map(Vec::new()));
    }
    serde_saphyr::from_str_with_options::<KeyTree>(text, options()).ok()
}

impl KeyTree {
    /// The line of a dotted field path such as `build.python_version` or
    /// `weights[1].target`; the deepest known ancestor's line otherwise.
    pub(crate) fn line_of(&self, field: &str) -> Option<usize> {
        let mut node = self;
        let mut line = None;
        for segment in field.split('.') {
            if let (Ok(index), KeyTree::Seq(items)) = (segment.parse::<usize>(), node) {
                let Some((l, value)) = items.get(index) else {
                    return line;
                };
                line = Some(*l);
                node = value;
                continue;
            }
            let (key, indices) = split_indices(segment);
            let KeyTree::Map(entries) = node else {
                return line;
            };
            let Some((_, l, value)) = entries.iter().find(|(k, _, _)| k == key) else {
                return line;
            };
            line = Some(*l);
            node = value;
            for index in indices {
                let KeyTree::Seq(items) = node else {
                    return line;
                };
                let Some((l, value)) = items.get(index) else {
                    return line;
                };
                line = Some(*l);
                node = value;
            }
        }
        line
    }
}

impl KeyTree {
    /// The dotted path of the last key (in document order) written on or
    /// before `line`: the field a parse error at that line is about.
    pub(crate) fn field_at_line(&self, line: usize) -> Option<String> {
        let mut best: Option<(usize, String)> = None;
        self.collect_fields(line, "", &mut best);
        best.map(|(_, path)| path)
    }

    fn collect_fields(&self, line: usize, path: &str, best: &mut Option<(usize, String)>) {
        match self {
            KeyTree::Map(entries) => {
                for (key, key_line, value) in entries {
                    if *key_line > line {
                        continue;
                    }
                    let here = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if best.as_ref().is_none_or(|(l, _)| *key_line >= *l) {
                        *best = Some((*key_line, here.clone()));
                    }
                    value.collect_fields(line, &here, best);
                }
            }
            KeyTree::Seq(items) => {
                for (index, (item_line, value)) in items.iter().enumerate() {
                    if *item_line > line {
                        continue;
                    }
                    let here = format!("{path}[{index}]");
                    if best.as_ref().is_none_or(|(l, _)| *item_line > *l) {
                        *best = Some((*item_line, here.clone()));
                    }
                    value.collect_fields(line, &here, best);
                }
            }
            KeyTree::Scalar => {}
        }
    }
}

fn split_indices(segment: &str) -> (&str, Vec<usize>) {
    let mut parts = segment.split('[');
    let key = parts.next().unwrap_or("");
    let indices = parts
        .filter_map(|p| p.trim_end_matches(']').parse().ok())
        .collect();
    (key, indices)
}

/// Which keys cog's decoder knows, per mapping.
#[derive(Clone, Copy)]
enum Known {
    Top,
    Build,
    Concurrency,
    RunItem,
    Mount,
    Weight,
    Source,
}

fn known_keys(kind: Known) -> &'static [&'static str] {
    match kind {
        Known::Top => &[
            "build",
            "image",
            "model",
            "run",
            "predict",
            "train",
            "concurrency",
            "environment",
            "weights",
        ],
        Known::Build => &[
            "gpu",
            "python_version",
            "python_requirements",
            "python_packages",
            "run",
            "system_packages",
            "pre_install",
            "cuda",
            "cudnn",
            "sdk_version",
        ],
        Known::Concurrency => &["max", "default_target"],
        Known::RunItem => &["command", "mounts"],
        Known::Mount => &["type", "id", "target"],
        Known::Weight => &["name", "target", "source"],
        Known::Source => &["uri", "include", "exclude"],
    }
}

fn child_kind(parent: Known, key: &str) -> Option<(Known, bool)> {
    match (parent, key) {
        (Known::Top, "build") => Some((Known::Build, false)),
        (Known::Top, "concurrency") => Some((Known::Concurrency, false)),
        (Known::Top, "weights") => Some((Known::Weight, true)),
        (Known::Build, "run") => Some((Known::RunItem, true)),
        (Known::RunItem, "mounts") => Some((Known::Mount, true)),
        (Known::Weight, "source") => Some((Known::Source, true)),
        _ => None,
    }
}

/// Unknown keys as (dotted path, line), in document order.
pub(crate) fn unknown_keys(tree: &KeyTree) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    walk_unknown(tree, Known::Top, "", &mut found);
    found
}

fn walk_unknown(node: &KeyTree, kind: Known, path: &str, found: &mut Vec<(String, usize)>) {
    let KeyTree::Map(entries) = node else { return };
    for (key, line, value) in entries {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if !known_keys(kind).contains(&key.as_str()) {
            found.push((here, *line));
            continue;
        }
        let Some((child, is_list)) = child_kind(kind, key) else {
            continue;
        };
        match value {
            KeyTree::Seq(items) if is_list => {
                for (index, (_, item)) in items.iter().enumerate() {
                    walk_unknown(item, child, &format!("{here}[{index}]"), found);
                }
            }
            KeyTree::Map(_) => walk_unknown(value, child, &here, found),
            _ => {}
        }
    }
}

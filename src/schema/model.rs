//! The static type model: annotations as written, resolved input and output
//! types, literal defaults and the import table of one Python file.

use std::collections::{HashMap, HashSet};

use super::gojson::{Json, Obj};

/// Deepest annotation nesting we follow before giving up (guards the stack).
pub const MAX_DEPTH: usize = 64;

/// A type annotation as written in source, before resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeAnn {
    /// A plain or dotted name: `str`, `cog.Path`.
    Simple(String),
    /// A subscripted name: `list[int]`, `Optional[str]`.
    Generic(String, Vec<TypeAnn>),
    /// `A | B | ...`.
    Union(Vec<TypeAnn>),
}

impl TypeAnn {
    fn is_none(&self) -> bool {
        matches!(self, TypeAnn::Simple(n) if n == "None")
    }
}

/// A statically evaluated Python literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (cog keeps escapes as written).
    Str(String),
    /// A list, tuple or set.
    List(Vec<Literal>),
    /// A dict, as parallel key/value lists.
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    /// The JSON value cog emits for this literal.
    pub fn to_json(&self) -> Json {
        match self {
            Literal::None => Json::Null,
            Literal::Bool(b) => Json::Bool(*b),
            Literal::Int(i) => Json::Int(*i),
            Literal::Float(f) => Json::Float(*f),
            Literal::Str(s) => Json::Str(s.clone()),
            Literal::List(items) => Json::Arr(items.iter().map(Literal::to_json).collect()),
            Literal::Dict(pairs) => {
                let mut obj = Obj::map();
                for (k, v) in pairs {
                    obj.set(&k.as_go_key(), v.to_json());
                }
                Json::Obj(obj)
            }
        }
    }

    /// The map key Go's `fmt.Sprintf("%v")` would produce for this literal.
    fn as_go_key(&self) -> String {
        match self {
            Literal::None => "<nil>".to_string(),
            Literal::Bool(b) => b.to_string(),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => super::gojson::go_float(*f),
            Literal::Str(s) => s.clone(),
            Literal::List(items) => {
                let parts: Vec<String> = items.iter().map(Literal::as_go_key).collect();
                format!("[{}]", parts.join(" "))
            }
            Literal::Dict(_) => "map[]".to_string(),
        }
    }
}

/// Scalar types cog knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    /// `bool`.
    Bool,
    /// `float`.
    Float,
    /// `int`.
    Int,
    /// `str`.
    Str,
    /// `cog.Path`.
    Path,
    /// `cog.File`.
    File,
    /// `cog.Secret`.
    Secret,
    /// `Any` / opaque object.
    Any,
}

impl Prim {
    /// Looks a bare type name up.
    pub fn from_name(name: &str) -> Option<Prim> {
        Some(match name {
            "bool" => Prim::Bool,
            "float" => Prim::Float,
            "int" => Prim::Int,
            "str" => Prim::Str,
            "Path" => Prim::Path,
            "File" => Prim::File,
            "Secret" => Prim::Secret,
            "Any" => Prim::Any,
            _ => return None,
        })
    }

    /// The Python spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Prim::Bool => "bool",
            Prim::Float => "float",
            Prim::Int => "int",
            Prim::Str => "str",
            Prim::Path => "Path",
            Prim::File => "File",
            Prim::Secret => "Secret",
            Prim::Any => "Any",
        }
    }

    /// The JSON schema fragment (a Go map).
    pub fn json_type(self) -> Obj {
        let t = |s: &str| Obj::map().with("type", Json::str(s));
        match self {
            Prim::Bool => t("boolean"),
            Prim::Float => t("number"),
            Prim::Int => t("integer"),
            Prim::Str => t("string"),
            Prim::Path | Prim::File => t("string").with("format", Json::str("uri")),
            Prim::Secret => t("string")
                .with("format", Json::str("password"))
                .with("writeOnly", Json::Bool(true))
                .with("x-cog-secret", Json::Bool(true)),
            Prim::Any => t("object"),
        }
    }

    /// The JSON `type` word used for enum components.
    pub fn json_type_word(self) -> &'static str {
        match self {
            Prim::Bool => "boolean",
            Prim::Float => "number",
            Prim::Int => "integer",
            Prim::Any => "object",
            _ => "string",
        }
    }
}

/// Where a local name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// Module text as written (`cog`, `.types`, `pkg.mod`).
    pub module: String,
    /// The imported name (or the module itself for `import x`).
    pub original: String,
}

/// The import table of one file (plus Python builtins), insertion ordered.
#[derive(Debug, Clone, Default)]
pub struct Imports {
    entries: Vec<(String, ImportEntry)>,
    index: HashMap<String, usize>,
}

impl Imports {
    /// Records `local` → (`module`, `original`); a re-import replaces the entry.
    pub fn set(&mut self, local: &str, module: &str, original: &str) {
        let entry = ImportEntry {
            module: module.to_string(),
            original: original.to_string(),
        };
        match self.index.get(local) {
            Some(&i) => self.entries[i].1 = entry,
            None => {
                self.index.insert(local.to_string(), self.entries.len());
                self.entries.push((local.to_string(), entry));
            }
        }
    }

    /// Looks a local name up.
    pub fn get(&self, local: &str) -> Option<&ImportEntry> {
        self.index.get(local).map(|&i| &self.entries[i].1)
    }

    /// All entries in import order.
    pub fn entries(&self) -> &[(String, ImportEntry)] {
        &self.entries
    }

    fn imported_from(&self, name: &str, modules: &[&str], originals: &[&str]) -> bool {
        self.get(name).is_some_and(|e| {
            modules.contains(&e.module.as_str()) && originals.contains(&e.original.as_str())
        })
    }

    /// `name` was imported from `cog` as `original`.
    pub fn is_cog(&self, name: &str, original: &str) -> bool {
        self.imported_from(name, &["cog"], &[original])
    }

    /// `name` is `typing.TypedDict`.
    pub fn is_typed_dict(&self, name: &str) -> bool {
        self.imported_from(name, &["typing", "typing_extensions"], &["TypedDict"])
    }

    /// `name` is `BaseModel` from cog or pydantic.
    pub fn is_base_model(&self, name: &str) -> bool {
        self.imported_from(name, &["cog", "pydantic", "pydantic.v1"], &["BaseModel"])
    }

    /// `name` is `Required`/`NotRequired` from typing.
    pub fn typed_dict_qualifier(&self, name: &str) -> Option<bool> {
        let entry = self.get(name)?;
        if entry.module != "typing" && entry.module != "typing_extensions" {
            return None;
        }
        match entry.original.as_str() {
            "Required" => Some(true),
            "NotRequired" => Some(false),
            _ => None,
        }
    }

    /// Splits `alias.Rest` into (`Rest`, entry of `alias`); `None` when the
    /// name has no dot. An unknown alias yields an empty entry, like cog.
    pub fn resolve_qualified(&self, name: &str) -> Option<(String, ImportEntry)> {
        let (head, rest) = name.split_once('.')?;
        let entry = self.get(head).cloned().unwrap_or(ImportEntry {
            module: String::new(),
            original: String::new(),
        });
        Some((rest.to_string(), entry))
    }

    /// `name` is `cog.Opaque` (bare or qualified).
    pub fn is_opaque(&self, name: &str) -> bool {
        if let Some((rest, entry)) = self.resolve_qualified(name) {
            return rest == "Opaque" && entry.module == "cog";
        }
        self.is_cog(name, "Opaque")
    }

    /// `name` is `typing.Annotated` (bare or `typing.Annotated`).
    pub fn is_annotated(&self, name: &str) -> bool {
        if let Some((rest, entry)) = self.resolve_qualified(name) {
            return rest == "Annotated"
                && is_typing_module(&entry.module)
                && entry.original == entry.module;
        }
        self.imported_from(name, &["typing", "typing_extensions"], &["Annotated"])
    }
}

fn is_typing_module(module: &str) -> bool {
    module == "typing" || module == "typing_extensions"
}

/// Fields of a BaseModel / TypedDict class.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelField {
    /// Field name.
    pub name: String,
    /// Annotation.
    pub ann: TypeAnn,
    /// Literal default, if any.
    pub default: Option<Literal>,
    /// TypedDict key requiredness (`None` for BaseModel fields).
    pub key_required: Option<bool>,
}

/// Model classes visible from one file, by (possibly qualified) name.
pub type Models = HashMap<String, Vec<ModelField>>;

/// Everything type resolution needs to know about the file being read.
pub struct Scope<'a> {
    /// The file's imports.
    pub imports: &'a Imports,
    /// Models visible in the file.
    pub models: &'a Models,
    /// Names of TypedDict classes visible in the file.
    pub typed_dicts: &'a HashSet<String>,
    /// Extension: map `Literal[...]` inputs to enums.
    pub literal_enums: bool,
}

/// A resolved input type (cog's recursive `InputType`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputType {
    /// The shape.
    pub kind: InputKind,
    /// Accepts `null`.
    pub nullable: bool,
}

/// Shapes of input types.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// A scalar (never `Prim::Any`, which is `Any`).
    Prim(Prim),
    /// An opaque JSON object.
    Any,
    /// An array.
    Array(Box<InputType>),
    /// A union of JSON-native variants.
    Union(Vec<InputType>),
    /// Extension: a `Literal[...]` with its values.
    Literal(Prim, Vec<Literal>),
}

impl InputType {
    fn of(kind: InputKind) -> InputType {
        InputType {
            kind,
            nullable: false,
        }
    }

    fn prim(p: Prim) -> InputType {
        if p == Prim::Any {
            InputType::of(InputKind::Any)
        } else {
            InputType::of(InputKind::Prim(p))
        }
    }

    /// The flat primitive cog's legacy `FieldType` would carry.
    pub fn field_prim(&self) -> Prim {
        match &self.kind {
            InputKind::Prim(p) => *p,
            InputKind::Literal(p, _) => *p,
            InputKind::Array(elem) => match elem.kind {
                InputKind::Prim(p) => p,
                _ => Prim::Any,
            },
            _ => Prim::Any,
        }
    }

    /// Scalar (non-array) and not nullable: cog's `Repetition == Required`.
    pub fn is_required_scalar(&self) -> bool {
        !self.nullable && !matches!(self.kind, InputKind::Array(_))
    }

    /// A non-nullable array: cog's `Repetition == Repeated`.
    pub fn is_required_array(&self) -> bool {
        !self.nullable && matches!(self.kind, InputKind::Array(_))
    }

    /// The JSON schema fragment for this type.
    pub fn json_schema(&self) -> Obj {
        let mut schema = match &self.kind {
            InputKind::Prim(p) => p.json_type(),
            InputKind::Any => Prim::Any.json_type(),
            InputKind::Literal(p, _) => p.json_type(),
            InputKind::Array(elem) => Obj::map()
                .with("type", Json::str("array"))
                .with("items", Json::Obj(elem.json_schema())),
            InputKind::Union(variants) => {
                let items = variants
                    .iter()
                    .map(|v| {
                        let mut s = v.json_schema();
                        if self.nullable {
                            s.set("nullable", Json::Bool(true));
                        }
                        Json::Obj(s)
                    })
                    .collect();
                Obj::map().with("anyOf", Json::Arr(items))
            }
        };
        if self.nullable {
            schema.set("nullable", Json::Bool(true));
        }
        schema
    }
}

/// Message for an unsupported type (cog: `unsupported type: ...`).
pub fn unsupported(msg: &str) -> String {
    format!("unsupported type: {msg}")
}

/// Message for a name imported from a module we cannot read.
pub fn unresolvable_imported(name: &str, module: &str) -> String {
    format!(
        "cannot resolve type '{name}' (imported from '{module}') - external types cannot be statically analyzed. \
If this is a JSON-shaped third-party type, mark it opaque with `from typing import Annotated`, `from cog import Opaque`, \
and `field: Annotated[{name}, Opaque]`. Otherwise define it as a BaseModel subclass in your predict file, or provide a .pyi stub"
    )
}

/// Message for a name that is neither primitive nor a known model.
pub fn unresolvable(name: &str) -> String {
    format!(
        "cannot resolve type '{name}' - it is not a primitive type (str, int, float, bool, Path) \
and no BaseModel definition was found in the predict file"
    )
}

const OPTIONAL_OUTPUT: &str = "unsupported output type: Optional is not allowed as a return type";

fn too_deep() -> String {
    unsupported("type annotation is nested too deeply")
}

/// `Optional[X]`, `Union[X, None]`, `X | None` (exactly two members) → `X`.
pub fn unwrap_optional(ann: &TypeAnn) -> Option<&TypeAnn> {
    match ann {
        TypeAnn::Generic(name, args) if name == "Optional" && args.len() == 1 => Some(&args[0]),
        TypeAnn::Generic(name, args) if name == "Union" && args.len() == 2 => other_than_none(args),
        TypeAnn::Union(args) if args.len() == 2 => other_than_none(args),
        _ => None,
    }
}

fn other_than_none(args: &[TypeAnn]) -> Option<&TypeAnn> {
    let i = args.iter().position(TypeAnn::is_none)?;
    Some(&args[1 - i])
}

fn unwrap_opaque<'a>(ann: &'a TypeAnn, imports: &Imports) -> Option<&'a TypeAnn> {
    match ann {
        TypeAnn::Generic(name, args) if imports.is_annotated(name) && args.len() >= 2 => args[1..]
            .iter()
            .any(|m| matches!(m, TypeAnn::Simple(n) if imports.is_opaque(n)))
            .then_some(&args[0]),
        _ => None,
    }
}

fn container_name(name: &str, imports: &Imports) -> Option<String> {
    let is_container = |n: &str| matches!(n, "List" | "Optional" | "Union");
    if let Some((rest, entry)) = imports.resolve_qualified(name) {
        return (is_typing_module(&entry.module)
            && entry.original == entry.module
            && is_container(&rest))
        .then_some(rest);
    }
    if let Some(entry) = imports.get(name) {
        if entry.module == "builtins" && entry.original == "list" {
            return Some("list".to_string());
        }
        if is_typing_module(&entry.module) && is_container(&entry.original) {
            return Some(entry.original.clone());
        }
        return None;
    }
    (name == "list").then(|| "list".to_string())
}

fn is_list_name(name: &str) -> bool {
    name == "list" || name == "List"
}

fn unwrap_opaque_optional<'a>(ann: &'a TypeAnn, imports: &Imports) -> Option<&'a TypeAnn> {
    if let TypeAnn::Generic(name, args) = ann {
        if let Some(container) = container_name(name, imports) {
            if container == "Optional" && args.len() == 1 {
                return Some(&args[0]);
            }
            if container == "Union"
                && args.len() == 2
                && let Some(other) = other_than_none(args)
            {
                return Some(other);
            }
        } else {
            return None;
        }
    }
    unwrap_optional(ann)
}

/// Opaque inner type → (is list, is optional), as cog's `opaqueFieldType`.
fn opaque_shape(inner: &TypeAnn, imports: &Imports, depth: usize) -> (bool, bool) {
    if depth > MAX_DEPTH {
        return (false, false);
    }
    if let Some(unwrapped) = unwrap_opaque(inner, imports) {
        return opaque_shape(unwrapped, imports, depth + 1);
    }
    match inner {
        TypeAnn::Simple(name) => {
            let list = container_name(name, imports).is_some_and(|c| is_list_name(&c));
            (list, false)
        }
        TypeAnn::Generic(name, args) => {
            let outer = container_name(name, imports);
            if let Some(optional_inner) = unwrap_opaque_optional(inner, imports) {
                return (opaque_shape(optional_inner, imports, depth + 1).0, true);
            }
            match outer.as_deref() {
                Some("List") | Some("list") => (true, false),
                Some("Optional") if args.len() == 1 => {
                    (opaque_shape(&args[0], imports, depth + 1).0, true)
                }
                _ => (false, false),
            }
        }
        TypeAnn::Union(_) => match unwrap_optional(inner) {
            Some(optional_inner) => (opaque_shape(optional_inner, imports, depth + 1).0, true),
            None => (false, false),
        },
    }
}

fn opaque_input(inner: &TypeAnn, imports: &Imports) -> InputType {
    let (list, optional) = opaque_shape(inner, imports, 0);
    let mut t = InputType::of(InputKind::Any);
    if list {
        t = InputType::of(InputKind::Array(Box::new(t)));
    }
    t.nullable = optional;
    t
}

fn is_typed_dict_name(name: &str, scope: &Scope) -> bool {
    if scope.typed_dicts.contains(name) {
        return true;
    }
    if let Some((rest, entry)) = scope.imports.resolve_qualified(name) {
        return scope
            .typed_dicts
            .contains(&format!("{}.{rest}", entry.original))
            || scope.typed_dicts.contains(&rest);
    }
    false
}

fn simple_input(name: &str, scope: &Scope) -> Result<InputType, String> {
    if is_typed_dict_name(name, scope) {
        return Ok(InputType::of(InputKind::Any));
    }
    let (bare, qualified_module) = match scope.imports.resolve_qualified(name) {
        Some((rest, entry)) => (rest, entry.module),
        None => (name.to_string(), String::new()),
    };
    if bare == "dict" || bare == "Dict" {
        return Ok(InputType::of(InputKind::Any));
    }
    match Prim::from_name(&bare) {
        Some(p) => Ok(InputType::prim(p)),
        None if !qualified_module.is_empty() => {
            Err(unresolvable_imported(&bare, &qualified_module))
        }
        None => match scope.imports.get(&bare) {
            Some(entry) => Err(unresolvable_imported(&bare, &entry.module)),
            None => Err(unsupported(&bare)),
        },
    }
}

fn outer_name(name: &str, imports: &Imports) -> String {
    match imports.resolve_qualified(name) {
        Some((rest, _)) => rest,
        None => name.to_string(),
    }
}

fn nested_generic_error() -> String {
    unsupported("nested generics like List[Optional[X]] are not supported")
}

/// Resolves a parameter annotation to an input type (cog `resolveInputType`).
pub fn resolve_input(ann: &TypeAnn, scope: &Scope, depth: usize) -> Result<InputType, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(inner) = unwrap_opaque(ann, scope.imports) {
        return Ok(opaque_input(inner, scope.imports));
    }
    match ann {
        TypeAnn::Simple(name) => simple_input(name, scope),
        TypeAnn::Union(args) => resolve_input_union(args, scope, depth),
        TypeAnn::Generic(name, args) => {
            let outer = outer_name(name, scope.imports);
            match outer.as_str() {
                "dict" | "Dict" => Ok(InputType::of(InputKind::Any)),
                "Optional" => {
                    if args.len() != 1 {
                        return Err(unsupported(&format!(
                            "Optional expects exactly 1 type argument, got {}",
                            args.len()
                        )));
                    }
                    let mut inner = resolve_input(&args[0], scope, depth + 1)?;
                    inner.nullable = true;
                    Ok(inner)
                }
                "Union" => resolve_input_union(args, scope, depth),
                _ if scope.imports.is_annotated(name) => resolve_input(&args[0], scope, depth + 1),
                "List" | "list" => resolve_input_list(args, scope, depth),
                "Literal" if scope.literal_enums => literal_input(args),
                _ => Err(unsupported(&format!(
                    "{outer}[...] is not a supported input type"
                ))),
            }
        }
    }
}

fn resolve_input_list(args: &[TypeAnn], scope: &Scope, depth: usize) -> Result<InputType, String> {
    if args.len() != 1 {
        return Err(unsupported(&format!(
            "List expects exactly 1 type argument, got {}",
            args.len()
        )));
    }
    let inner = match unwrap_opaque(&args[0], scope.imports) {
        Some(opaque) => opaque_input(opaque, scope.imports),
        None => resolve_input(&args[0], scope, depth + 1)?,
    };
    if inner.nullable || matches!(inner.kind, InputKind::Array(_) | InputKind::Union(_)) {
        return Err(nested_generic_error());
    }
    Ok(InputType::of(InputKind::Array(Box::new(inner))))
}

fn literal_input(args: &[TypeAnn]) -> Result<InputType, String> {
    let mut values = Vec::new();
    for arg in args {
        match arg {
            TypeAnn::Simple(text) => values.push(literal_from_annotation_text(text)?),
            _ => return Err(unsupported("Literal[...] values must be literals")),
        }
    }
    let prim = match values.first() {
        Some(Literal::Int(_)) => Prim::Int,
        Some(Literal::Float(_)) => Prim::Float,
        Some(Literal::Bool(_)) => Prim::Bool,
        _ => Prim::Str,
    };
    let same_kind = values
        .iter()
        .all(|v| std::mem::discriminant(v) == std::mem::discriminant(&values[0]));
    if !same_kind {
        return Err(unsupported(
            "Literal[...] values must all have the same type",
        ));
    }
    Ok(InputType::of(InputKind::Literal(prim, values)))
}

/// Annotation texts of `Literal[...]` members are kept verbatim by the
/// annotation reader with a `=lit:` prefix; decode them.
fn literal_from_annotation_text(text: &str) -> Result<Literal, String> {
    let raw = text
        .strip_prefix(LITERAL_MARK)
        .ok_or_else(|| unsupported("Literal[...] values must be literals"))?;
    if let Some(s) = raw.strip_prefix('s') {
        return Ok(Literal::Str(s.to_string()));
    }
    match raw {
        "True" => return Ok(Literal::Bool(true)),
        "False" => return Ok(Literal::Bool(false)),
        _ => {}
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Ok(Literal::Int(i));
    }
    raw.parse::<f64>()
        .map(Literal::Float)
        .map_err(|_| unsupported("Literal[...] values must be literals"))
}

/// Marker prefix for literal values inside annotations (never a valid name).
pub const LITERAL_MARK: &str = "=lit:";

fn resolve_input_union(args: &[TypeAnn], scope: &Scope, depth: usize) -> Result<InputType, String> {
    let mut variants = Vec::new();
    let mut nullable = false;
    for arg in args {
        if arg.is_none() {
            nullable = true;
            continue;
        }
        let nested_union = matches!(arg, TypeAnn::Union(_))
            || matches!(arg, TypeAnn::Generic(n, _) if n == "Union");
        if nested_union {
            return Err(unsupported("nested union inputs are not supported"));
        }
        let variant = resolve_input(arg, scope, depth + 1)?;
        if matches!(variant.kind, InputKind::Union(_)) {
            return Err(unsupported("nested union inputs are not supported"));
        }
        variants.push(variant);
    }
    match variants.len() {
        0 => Err(unsupported(
            "union inputs must include at least one non-None type",
        )),
        1 => {
            let mut only = variants.remove(0);
            only.nullable = only.nullable || nullable;
            Ok(only)
        }
        _ => {
            for v in &variants {
                validate_union_variant(v)?;
            }
            Ok(InputType {
                kind: InputKind::Union(variants),
                nullable,
            })
        }
    }
}

fn validate_union_variant(t: &InputType) -> Result<(), String> {
    if t.nullable {
        return Err(unsupported(
            "nested nullable variants are not supported in union inputs",
        ));
    }
    match &t.kind {
        InputKind::Prim(p @ (Prim::Path | Prim::File | Prim::Secret)) => Err(unsupported(
            &format!("{} is not supported in union inputs", p.name()),
        )),
        InputKind::Array(elem) => validate_union_variant(elem),
        InputKind::Union(_) => Err(unsupported("nested union inputs are not supported")),
        _ => Ok(()),
    }
}

/// A resolved output type (cog's `SchemaType`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutType {
    /// The shape.
    pub kind: OutKind,
    /// Accepts `null` (model fields only).
    pub nullable: bool,
}

/// Shapes of output types.
#[derive(Debug, Clone, PartialEq)]
pub enum OutKind {
    /// A scalar.
    Prim(Prim),
    /// An opaque object.
    Any,
    /// `list[T]`.
    Array(Box<OutType>),
    /// `dict[str, V]`.
    Dict(Box<OutType>),
    /// A model: fields in order (name, type, required).
    Object(Vec<(String, OutType, bool)>),
    /// `Iterator[T]`.
    Iterator(Box<OutType>),
    /// `ConcatenateIterator[str]`.
    ConcatIterator,
}

impl OutType {
    fn of(kind: OutKind) -> OutType {
        OutType {
            kind,
            nullable: false,
        }
    }

    /// True for iterator outputs (what `@streaming` requires).
    pub fn is_iterator(&self) -> bool {
        matches!(self.kind, OutKind::Iterator(_) | OutKind::ConcatIterator)
    }

    /// The JSON schema; `top_level` adds `"title":"Output"`.
    pub fn json_schema(&self, top_level: bool) -> Obj {
        let mut result = self.core_schema();
        if top_level {
            result.set("title", Json::str("Output"));
        }
        if self.nullable {
            result.set("nullable", Json::Bool(true));
        }
        result
    }

    fn core_schema(&self) -> Obj {
        let typed = |t: &str| Obj::map().with("type", Json::str(t));
        match &self.kind {
            OutKind::Prim(p) => p.json_type(),
            OutKind::Any => typed("object"),
            OutKind::Array(items) => {
                typed("array").with("items", Json::Obj(items.json_schema(false)))
            }
            OutKind::Dict(value) => {
                typed("object").with("additionalProperties", Json::Obj(value.json_schema(false)))
            }
            OutKind::Object(fields) => {
                let mut properties = Obj::ordered();
                let mut required = Vec::new();
                for (name, field_type, is_required) in fields {
                    let mut prop = field_type.json_schema(false);
                    prop.set("title", Json::Str(title_case(name)));
                    if *is_required {
                        required.push(Json::Str(name.clone()));
                    }
                    properties.set(name, Json::Obj(prop));
                }
                let mut result = typed("object").with("properties", Json::Obj(properties));
                if !required.is_empty() {
                    result.set("required", Json::Arr(required));
                }
                result
            }
            OutKind::Iterator(elem) => typed("array")
                .with("items", Json::Obj(elem.json_schema(false)))
                .with("x-cog-array-type", Json::str("iterator")),
            OutKind::ConcatIterator => typed("array")
                .with("items", Json::Obj(Prim::Str.json_type()))
                .with("x-cog-array-type", Json::str("iterator"))
                .with("x-cog-array-display", Json::str("concatenate")),
        }
    }
}

/// cog's TitleCase: split on `_`, upper-case each part's first letter, join with spaces.
pub fn title_case(s: &str) -> String {
    s.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) if first.is_ascii() => {
                    format!("{}{}", first.to_ascii_uppercase(), chars.as_str())
                }
                Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str()),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resolves a return annotation (cog `ResolveSchemaType`).
pub fn resolve_output(ann: &TypeAnn, scope: &Scope) -> Result<OutType, String> {
    let mut seen = Vec::new();
    resolve_out(ann, scope, &mut seen, 0)
}

fn opaque_output(inner: &TypeAnn, imports: &Imports) -> OutType {
    let list = match inner {
        TypeAnn::Simple(n) => container_name(n, imports).is_some_and(|c| is_list_name(&c)),
        TypeAnn::Generic(n, args) => {
            container_name(n, imports).is_some_and(|c| is_list_name(&c)) && args.len() == 1
        }
        TypeAnn::Union(_) => false,
    };
    if list {
        OutType::of(OutKind::Array(Box::new(OutType::of(OutKind::Prim(
            Prim::Any,
        )))))
    } else {
        OutType::of(OutKind::Prim(Prim::Any))
    }
}

fn resolve_out(
    ann: &TypeAnn,
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<OutType, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(inner) = unwrap_opaque(ann, scope.imports) {
        if unwrap_opaque_optional(inner, scope.imports).is_some() {
            return Err(OPTIONAL_OUTPUT.to_string());
        }
        return Ok(opaque_output(inner, scope.imports));
    }
    match ann {
        TypeAnn::Generic(name, args) if scope.imports.is_annotated(name) => {
            resolve_out(&args[0], scope, seen, depth + 1)
        }
        TypeAnn::Simple(name) => resolve_simple_out(name, scope, seen, depth),
        TypeAnn::Generic(name, args) => resolve_generic_out(name, args, scope, seen, depth),
        TypeAnn::Union(_) => Err(union_output_error(ann)),
    }
}

fn union_output_error(ann: &TypeAnn) -> String {
    if unwrap_optional(ann).is_some() {
        OPTIONAL_OUTPUT.to_string()
    } else {
        unsupported("union types are not supported as output")
    }
}

fn resolve_simple_out(
    name: &str,
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<OutType, String> {
    if let Some(fields) = scope.models.get(name) {
        return resolve_model(name, fields, scope, seen, depth);
    }
    let qualified = scope.imports.resolve_qualified(name);
    let bare = match &qualified {
        Some((rest, entry)) => {
            let key = format!("{}.{rest}", entry.original);
            if let Some(fields) = scope.models.get(&key) {
                return resolve_model(&key, fields, scope, seen, depth);
            }
            rest.clone()
        }
        None => name.to_string(),
    };
    if bare == "Any" || bare == "dict" || bare == "Dict" {
        return Ok(OutType::of(OutKind::Any));
    }
    if container_name(name, scope.imports).is_some_and(|c| is_list_name(&c)) {
        return Ok(OutType::of(OutKind::Array(Box::new(OutType::of(
            OutKind::Any,
        )))));
    }
    if let Some(p) = Prim::from_name(&bare) {
        return Ok(OutType::of(OutKind::Prim(p)));
    }
    if let Some((_, entry)) = &qualified
        && !entry.module.is_empty()
    {
        return Err(unresolvable_imported(&bare, &entry.module));
    }
    match scope.imports.get(&bare) {
        Some(entry) => Err(unresolvable_imported(&bare, &entry.module)),
        None => Err(unresolvable(&bare)),
    }
}

fn resolve_model(
    name: &str,
    fields: &[ModelField],
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<OutType, String> {
    if seen.iter().any(|s| s == name) {
        return Ok(OutType::of(OutKind::Any));
    }
    seen.push(name.to_string());
    let result = resolve_model_fields(fields, scope, seen, depth);
    seen.pop();
    result
}

fn resolve_model_fields(
    fields: &[ModelField],
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<OutType, String> {
    let mut out: Vec<(String, OutType, bool)> = Vec::new();
    for field in fields {
        let (field_type, mut required) = resolve_field(&field.ann, scope, seen, depth + 1)
            .map_err(|e| format!("field \"{}\": {e}", go_quote_inner(&field.name)))?;
        if let Some(key_required) = field.key_required {
            required = key_required;
        }
        if field.default.is_some() {
            required = false;
        }
        match out.iter_mut().find(|(n, _, _)| *n == field.name) {
            Some(slot) => *slot = (field.name.clone(), field_type, required),
            None => out.push((field.name.clone(), field_type, required)),
        }
    }
    Ok(OutType::of(OutKind::Object(out)))
}

fn go_quote_inner(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn resolve_field(
    ann: &TypeAnn,
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<(OutType, bool), String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(inner) = unwrap_opaque(ann, scope.imports) {
        if let Some(optional_inner) = unwrap_opaque_optional(inner, scope.imports) {
            let mut t = opaque_output(optional_inner, scope.imports);
            t.nullable = true;
            return Ok((t, false));
        }
        return Ok((opaque_output(inner, scope.imports), true));
    }
    if let TypeAnn::Generic(name, args) = ann
        && scope.imports.is_annotated(name)
    {
        return resolve_field(&args[0], scope, seen, depth + 1);
    }
    if let Some(inner) = unwrap_opaque_optional(ann, scope.imports) {
        let mut t = resolve_out(inner, scope, seen, depth + 1)?;
        t.nullable = true;
        return Ok((t, false));
    }
    Ok((resolve_out(ann, scope, seen, depth + 1)?, true))
}

fn resolve_generic_out(
    name: &str,
    args: &[TypeAnn],
    scope: &Scope,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<OutType, String> {
    let outer = outer_name(name, scope.imports);
    match outer.as_str() {
        "dict" | "Dict" => {
            if args.len() == 2 {
                let value = resolve_out(&args[1], scope, seen, depth + 1)
                    .map_err(|e| format!("resolving dict value type: {e}"))?;
                return Ok(OutType::of(OutKind::Dict(Box::new(value))));
            }
            Err(unsupported("dict expects 0 or 2 type arguments"))
        }
        "Optional" => {
            if args.len() != 1 {
                return Err(unsupported("Optional expects exactly 1 type argument"));
            }
            Err(OPTIONAL_OUTPUT.to_string())
        }
        "Union" => Err(union_output_error(&TypeAnn::Union(args.to_vec()))),
        _ if container_name(name, scope.imports).is_some_and(|c| is_list_name(&c)) => {
            if args.len() != 1 {
                return Err(unsupported("list expects exactly 1 type argument"));
            }
            let elem = resolve_out(&args[0], scope, seen, depth + 1)?;
            Ok(OutType::of(OutKind::Array(Box::new(elem))))
        }
        "Iterator" | "AsyncIterator" => {
            if args.len() != 1 {
                return Err(unsupported("Iterator expects exactly 1 type argument"));
            }
            let elem = resolve_out(&args[0], scope, seen, depth + 1)?;
            Ok(OutType::of(OutKind::Iterator(Box::new(elem))))
        }
        "ConcatenateIterator" | "AsyncConcatenateIterator" => concat_iterator(args),
        _ => Err(unsupported(&format!(
            "{outer}[...] is not a supported output type"
        ))),
    }
}

fn concat_iterator(args: &[TypeAnn]) -> Result<OutType, String> {
    if args.len() != 1 {
        return Err(unsupported(
            "ConcatenateIterator expects exactly 1 type argument",
        ));
    }
    match &args[0] {
        TypeAnn::Simple(inner) if inner == "str" => Ok(OutType::of(OutKind::ConcatIterator)),
        TypeAnn::Simple(inner) => Err(format!(
            "ConcatenateIterator element type must be str, got {inner}"
        )),
        _ => Err(unsupported(
            "ConcatenateIterator element type must be a simple type",
        )),
    }
}

//! Reading Python source with tree-sitter: imports, module constants,
//! literals, annotations, model classes and the `Input(...)` registry.

use std::collections::{HashMap, HashSet};

use tree_sitter::{Node, Parser, Tree};

use super::model::{Imports, LITERAL_MARK, Literal, MAX_DEPTH, ModelField, Models, TypeAnn};

/// One parsed Python file and the facts read from it.
pub struct PyFile {
    /// Path relative to the project directory (`/`-separated).
    pub rel_path: String,
    /// Source text (invalid UTF-8 replaced).
    pub source: String,
    /// The syntax tree.
    pub tree: Tree,
    /// Top-level imports plus builtins.
    pub imports: Imports,
    /// Module-level constants with literal values.
    pub constants: HashMap<String, Literal>,
}

impl PyFile {
    /// Parses `source`; `None` only if tree-sitter itself gives up.
    pub fn parse(rel_path: &str, source: String) -> Option<PyFile> {
        let mut parser = Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .ok()?;
        let tree = parser.parse(source.as_bytes(), None)?;
        let mut file = PyFile {
            rel_path: rel_path.to_string(),
            source,
            tree,
            imports: Imports::default(),
            constants: HashMap::new(),
        };
        file.imports = collect_imports(file.tree.root_node(), &file.source);
        file.constants = collect_constants(file.tree.root_node(), &file.source);
        Some(file)
    }

    /// Text of a node.
    pub fn text(&self, node: Node) -> &str {
        text(node, &self.source)
    }

    /// The first syntax error (1-based line), if the file has one.
    pub fn first_syntax_error(&self) -> Option<usize> {
        let root = self.tree.root_node();
        if !root.has_error() {
            return None;
        }
        first_error_line(root)
    }
}

fn first_error_line(root: Node) -> Option<usize> {
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        if node.is_error() || node.is_missing() {
            return Some(node.start_position().row + 1);
        }
        let mut children = all_children(node);
        children.retain(|c| c.has_error());
        pending.extend(children.into_iter().rev());
    }
    None
}

/// Text of `node` within `source`.
pub fn text<'s>(node: Node, source: &'s str) -> &'s str {
    source.get(node.start_byte()..node.end_byte()).unwrap_or("")
}

/// Named children of a node.
pub fn named_children(node: Node) -> Vec<Node> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor).collect()
}

/// All children (named and anonymous) of a node.
pub fn all_children(node: Node) -> Vec<Node> {
    let mut cursor = node.walk();
    node.children(&mut cursor).collect()
}

/// The class definition in `node` (unwrapping decorators).
pub fn unwrap_class(node: Node) -> Option<Node> {
    unwrap_kind(node, "class_definition")
}

/// The function definition in `node` (unwrapping decorators).
pub fn unwrap_function(node: Node) -> Option<Node> {
    unwrap_kind(node, "function_definition")
}

fn unwrap_kind<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    if node.kind() == kind {
        return Some(node);
    }
    if node.kind() == "decorated_definition" {
        return named_children(node).into_iter().find(|c| c.kind() == kind);
    }
    None
}

/// 1-based line of a node.
pub fn line_of(node: Node) -> usize {
    node.start_position().row + 1
}

fn collect_imports(root: Node, source: &str) -> Imports {
    let mut imports = Imports::default();
    for child in named_children(root) {
        match child.kind() {
            "import_from_statement" => read_import_from(child, source, &mut imports),
            "import_statement" => read_import(child, source, &mut imports),
            _ => {}
        }
    }
    for builtin in ["str", "int", "float", "bool", "list", "dict", "set", "None"] {
        if imports.get(builtin).is_none() {
            imports.set(builtin, "builtins", builtin);
        }
    }
    imports
}

fn read_import_from(node: Node, source: &str, imports: &mut Imports) {
    let Some(module_node) = node.child_by_field_name("module_name") else {
        return;
    };
    let module = text(module_node, source).to_string();
    for child in all_children(node) {
        match child.kind() {
            "dotted_name" if child.start_byte() != module_node.start_byte() => {
                let name = text(child, source);
                imports.set(name, &module, name);
            }
            "aliased_import" => {
                let Some(name_node) = child.child_by_field_name("name") else {
                    continue;
                };
                let original = text(name_node, source);
                let alias = child
                    .child_by_field_name("alias")
                    .map_or(original, |a| text(a, source));
                imports.set(alias, &module, original);
            }
            _ => {}
        }
    }
}

fn read_import(node: Node, source: &str, imports: &mut Imports) {
    let statement = text(node, source).trim();
    let list = statement
        .strip_prefix("import ")
        .unwrap_or(statement)
        .trim();
    for part in list.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (module, alias) = match part.split_once(" as ") {
            Some((m, a)) => (m.trim(), a.trim()),
            None => (part, part),
        };
        imports.set(alias, module, module);
    }
}

/// The assignment inside a statement (`X = ...` at top level or in a class).
pub fn assignment_of(stmt: Node) -> Option<Node> {
    if stmt.kind() == "assignment" {
        return Some(stmt);
    }
    if stmt.kind() == "expression_statement" && stmt.named_child_count() == 1 {
        return stmt.named_child(0).filter(|n| n.kind() == "assignment");
    }
    None
}

fn collect_constants(root: Node, source: &str) -> HashMap<String, Literal> {
    let mut constants = HashMap::new();
    for child in named_children(root) {
        let Some(assign) = assignment_of(child) else {
            continue;
        };
        let Some(left) = assign.child_by_field_name("left") else {
            continue;
        };
        if left.kind() != "identifier" {
            continue;
        }
        if let Some(value) = assign
            .child_by_field_name("right")
            .and_then(|r| parse_literal(r, source))
        {
            constants.insert(text(left, source).to_string(), value);
        }
    }
    constants
}

/// Parses a Python literal node (cog's `parseDefaultValue`).
pub fn parse_literal(node: Node, source: &str) -> Option<Literal> {
    parse_literal_at(node, source, 0)
}

fn parse_literal_at(node: Node, source: &str, depth: usize) -> Option<Literal> {
    if depth > MAX_DEPTH {
        return None;
    }
    let items = |n: Node| -> Option<Vec<Literal>> {
        named_children(n)
            .into_iter()
            .map(|c| parse_literal_at(c, source, depth + 1))
            .collect()
    };
    match node.kind() {
        "none" => Some(Literal::None),
        "true" => Some(Literal::Bool(true)),
        "false" => Some(Literal::Bool(false)),
        "integer" => go_parse_int(text(node, source)).map(Literal::Int),
        "float" => go_parse_float(text(node, source)).map(Literal::Float),
        "string" | "concatenated_string" => parse_string_literal(node, source).map(Literal::Str),
        "list" => items(node).map(Literal::List),
        "set" => items(node).map(Literal::List),
        "dictionary" => Some(Literal::Dict(parse_dict_pairs(node, source, depth))),
        "unary_operator" => {
            let t = text(node, source).trim();
            go_parse_int(t)
                .map(Literal::Int)
                .or_else(|| go_parse_float(t).map(Literal::Float))
        }
        "tuple" => Some(Literal::List(
            named_children(node)
                .into_iter()
                .filter_map(|c| parse_literal_at(c, source, depth + 1))
                .collect(),
        )),
        _ => None,
    }
}

fn parse_dict_pairs(node: Node, source: &str, depth: usize) -> Vec<(Literal, Literal)> {
    let mut pairs = Vec::new();
    for child in named_children(node) {
        if child.kind() != "pair" {
            continue;
        }
        let key = child
            .child_by_field_name("key")
            .and_then(|k| parse_literal_at(k, source, depth + 1));
        let value = child
            .child_by_field_name("value")
            .and_then(|v| parse_literal_at(v, source, depth + 1));
        if let (Some(k), Some(v)) = (key, value) {
            pairs.push((k, v));
        }
    }
    pairs
}

/// Integer parsing like Go's `strconv.ParseInt(s, 0, 64)`.
pub fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if !underscores_ok(&digits, prefixed) {
        return None;
    }
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
        Some((magnitude as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn underscores_ok(digits: &str, prefixed: bool) -> bool {
    if !digits.contains('_') {
        return true;
    }
    let bytes = digits.as_bytes();
    let edge_ok = bytes.first() != Some(&b'_') || prefixed;
    edge_ok && bytes.last() != Some(&b'_') && !digits.contains("__")
}

/// Float parsing like Go's `strconv.ParseFloat(s, 64)` for Python float texts.
pub fn go_parse_float(s: &str) -> Option<f64> {
    if s.contains('_') || s.is_empty() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("inf") || body.starts_with("nan") {
        return None;
    }
    let value: f64 = s.parse().ok()?;
    value.is_finite().then_some(value)
}

/// String literal contents as cog reads them (quotes stripped, escapes kept).
pub fn parse_string_literal(node: Node, source: &str) -> Option<String> {
    let t = text(node, source);
    if t.starts_with("\"\"\"") || t.starts_with("'''") {
        return (t.len() >= 6).then(|| t[3..t.len() - 3].to_string());
    }
    if t.starts_with('"') || t.starts_with('\'') {
        return (t.len() >= 2).then(|| t[1..t.len() - 1].to_string());
    }
    if t.starts_with("r\"") || t.starts_with("r'") {
        return (t.len() >= 3).then(|| t[2..t.len() - 1].to_string());
    }
    None
}

/// A number literal (cog's `parseNumberLiteral`).
pub fn parse_number(node: Node, source: &str) -> Option<f64> {
    go_parse_float(text(node, source).trim())
}

/// A `True`/`False` literal.
pub fn parse_bool(node: Node, source: &str) -> Option<bool> {
    match node.kind() {
        "true" => return Some(true),
        "false" => return Some(false),
        _ => {}
    }
    match text(node, source) {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// A list literal whose items are all literals.
pub fn parse_list_literal(node: Node, source: &str) -> Option<Vec<Literal>> {
    if node.kind() != "list" {
        return None;
    }
    match parse_literal(node, source)? {
        Literal::List(items) => Some(items),
        _ => None,
    }
}

/// A literal, or a module constant named by an identifier.
pub fn resolve_default_expr(
    node: Node,
    source: &str,
    constants: &HashMap<String, Literal>,
) -> Option<Literal> {
    parse_literal(node, source).or_else(|| {
        (node.kind() == "identifier")
            .then(|| constants.get(text(node, source)).cloned())
            .flatten()
    })
}

/// A string literal, or a module string constant named by an identifier.
pub fn resolve_string_expr(
    node: Node,
    source: &str,
    constants: &HashMap<String, Literal>,
) -> Option<String> {
    if let Some(s) = parse_string_literal(node, source) {
        return Some(s);
    }
    if node.kind() != "identifier" {
        return None;
    }
    match constants.get(text(node, source)) {
        Some(Literal::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `choices=` expressions: list literal, constant, `list(D.keys())`, `a + b`.
pub fn resolve_choices_expr(
    node: Node,
    source: &str,
    constants: &HashMap<String, Literal>,
    depth: usize,
) -> Option<Vec<Literal>> {
    if depth > MAX_DEPTH {
        return None;
    }
    match node.kind() {
        "list" => parse_list_literal(node, source),
        "identifier" => match constants.get(text(node, source))? {
            Literal::List(items) => Some(items.clone()),
            _ => None,
        },
        "call" => resolve_choices_call(node, source, constants),
        "binary_operator" => {
            let has_plus = all_children(node)
                .iter()
                .any(|c| !c.is_named() && text(*c, source) == "+");
            if !has_plus {
                return None;
            }
            let left = node.child_by_field_name("left")?;
            let right = node.child_by_field_name("right")?;
            let mut items = resolve_choices_expr(left, source, constants, depth + 1)?;
            items.extend(resolve_choices_expr(right, source, constants, depth + 1)?);
            Some(items)
        }
        _ => None,
    }
}

fn resolve_choices_call(
    node: Node,
    source: &str,
    constants: &HashMap<String, Literal>,
) -> Option<Vec<Literal>> {
    let function = node.child_by_field_name("function")?;
    if text(function, source) != "list" {
        return None;
    }
    let args = node.child_by_field_name("arguments")?;
    let arg = named_children(args).into_iter().next()?;
    if arg.kind() != "call" {
        return None;
    }
    let inner = arg.child_by_field_name("function")?;
    if inner.kind() != "attribute" {
        return None;
    }
    let object = inner.child_by_field_name("object")?;
    let attribute = inner.child_by_field_name("attribute")?;
    if object.kind() != "identifier" {
        return None;
    }
    let Literal::Dict(pairs) = constants.get(text(object, source))? else {
        return None;
    };
    match text(attribute, source) {
        "keys" => Some(pairs.iter().map(|(k, _)| k.clone()).collect()),
        "values" => Some(pairs.iter().map(|(_, v)| v.clone()).collect()),
        _ => None,
    }
}

/// Reads an annotation node (cog's `parseTypeAnnotation`).
pub fn parse_annotation(node: Node, source: &str) -> Result<TypeAnn, String> {
    parse_annotation_at(node, source, 0)
}

fn parse_annotation_at(node: Node, source: &str, depth: usize) -> Result<TypeAnn, String> {
    if depth > MAX_DEPTH {
        return Err(super::model::unsupported(
            "type annotation is nested too deeply",
        ));
    }
    let n = if node.kind() == "type" && node.named_child_count() > 0 {
        node.named_child(0).unwrap_or(node)
    } else {
        node
    };
    match n.kind() {
        "identifier" | "attribute" => Ok(TypeAnn::Simple(text(n, source).to_string())),
        "none" => Ok(TypeAnn::Simple("None".to_string())),
        "subscript" => parse_subscript(n, source, depth),
        "generic_type" => parse_generic_type(n, source, depth),
        "union_type" => parse_union_type(n, source, depth),
        "binary_operator" => parse_union_operator(n, source, depth),
        "string" | "concatenated_string" => {
            let t = text(n, source);
            let inner = t
                .trim_start_matches(['"', '\''])
                .trim_end_matches(['"', '\'']);
            parse_type_text(inner, 0)
                .ok_or_else(|| super::model::unsupported(&format!("string annotation: {t}")))
        }
        kind => {
            let t = text(n, source);
            parse_type_text(t, 0).ok_or_else(|| super::model::unsupported(&format!("{kind}: {t}")))
        }
    }
}

fn is_literal_name(name: &str) -> bool {
    name == "Literal" || name.ends_with(".Literal")
}

fn parse_subscript(n: Node, source: &str, depth: usize) -> Result<TypeAnn, String> {
    let value = n
        .child_by_field_name("value")
        .ok_or_else(|| "failed to parse Python source: subscript has no value".to_string())?;
    let outer = text(value, source).to_string();
    let mut args = Vec::new();
    for child in named_children(n) {
        if child.start_byte() == value.start_byte() || child.kind() == "comment" {
            continue;
        }
        if is_literal_name(&outer) {
            args.push(literal_member(text(child, source)));
            continue;
        }
        args.push(parse_annotation_at(child, source, depth + 1)?);
    }
    if args.is_empty() {
        return Ok(TypeAnn::Simple(outer));
    }
    Ok(TypeAnn::Generic(outer, args))
}

/// `X[...]` in a type position (newer grammars; read like a subscript).
fn parse_generic_type(n: Node, source: &str, depth: usize) -> Result<TypeAnn, String> {
    let children = named_children(n);
    let Some(head) = children.first() else {
        return Err(super::model::unsupported(&format!(
            "generic_type: {}",
            text(n, source)
        )));
    };
    let outer = text(*head, source).to_string();
    let mut args = Vec::new();
    for parameter in children
        .iter()
        .skip(1)
        .filter(|c| c.kind() == "type_parameter")
    {
        for child in named_children(*parameter) {
            if child.kind() == "comment" {
                continue;
            }
            if is_literal_name(&outer) {
                args.push(literal_member(text(child, source)));
                continue;
            }
            args.push(parse_annotation_at(child, source, depth + 1)?);
        }
    }
    if args.is_empty() {
        return Ok(TypeAnn::Simple(outer));
    }
    Ok(TypeAnn::Generic(outer, args))
}

/// `A | B` in a type position (newer grammars; read like `binary_operator`).
fn parse_union_type(n: Node, source: &str, depth: usize) -> Result<TypeAnn, String> {
    let mut members = Vec::new();
    for side in named_children(n)
        .into_iter()
        .filter(|c| c.kind() != "comment")
    {
        match parse_annotation_at(side, source, depth + 1)? {
            TypeAnn::Union(inner) => members.extend(inner),
            other => members.push(other),
        }
    }
    if members.len() < 2 {
        return Err(super::model::unsupported(&format!(
            "union_type: {}",
            text(n, source)
        )));
    }
    Ok(TypeAnn::Union(members))
}

/// Encodes a `Literal[...]` member so the enum extension can read it back.
fn literal_member(raw: &str) -> TypeAnn {
    let raw = raw.trim();
    let quoted = raw.len() >= 2
        && ((raw.starts_with('"') && raw.ends_with('"'))
            || (raw.starts_with('\'') && raw.ends_with('\'')));
    if quoted {
        return TypeAnn::Simple(format!("{LITERAL_MARK}s{}", &raw[1..raw.len() - 1]));
    }
    TypeAnn::Simple(format!("{LITERAL_MARK}{raw}"))
}

fn parse_union_operator(n: Node, source: &str, depth: usize) -> Result<TypeAnn, String> {
    let left = n.child_by_field_name("left");
    let right = n.child_by_field_name("right");
    let (Some(left), Some(right)) = (left, right) else {
        return Err("failed to parse Python source: binary_operator missing operand".to_string());
    };
    let is_union = all_children(n)
        .iter()
        .any(|c| !c.is_named() && text(*c, source) == "|");
    if !is_union {
        return Err(super::model::unsupported(
            "non-union binary operator in type annotation",
        ));
    }
    let mut members = Vec::new();
    for side in [left, right] {
        match parse_annotation_at(side, source, depth + 1)? {
            TypeAnn::Union(inner) => members.extend(inner),
            other => members.push(other),
        }
    }
    Ok(TypeAnn::Union(members))
}

/// Parses an annotation from text (cog's `parseTypeFromString`).
pub fn parse_type_text(s: &str, depth: usize) -> Option<TypeAnn> {
    if depth > MAX_DEPTH {
        return None;
    }
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let quoted = s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')));
    if quoted {
        return parse_type_text(&s[1..s.len() - 1], depth + 1);
    }
    if let Some(parts) = split_top_level(s, '|') {
        let members: Option<Vec<TypeAnn>> = parts
            .iter()
            .map(|p| parse_type_text(p.trim(), depth + 1))
            .collect();
        let members = members?;
        return (members.len() >= 2).then_some(TypeAnn::Union(members));
    }
    if let Some(bracket) = s.find('[')
        && s.ends_with(']')
    {
        let outer = s[..bracket].trim().to_string();
        let inner = &s[bracket + 1..s.len() - 1];
        let parts = split_top_level(inner, ',').unwrap_or_else(|| vec![inner.to_string()]);
        let args: Option<Vec<TypeAnn>> = parts
            .iter()
            .map(|p| {
                if is_literal_name(&outer) {
                    Some(literal_member(p))
                } else {
                    parse_type_text(p.trim(), depth + 1)
                }
            })
            .collect();
        let args = args?;
        return (!args.is_empty()).then_some(TypeAnn::Generic(outer, args));
    }
    let valid = s.split('.').all(|part| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    valid.then(|| TypeAnn::Simple(s.to_string()))
}

/// Splits on `sep` outside brackets; `None` when `sep` never occurs there.
fn split_top_level(s: &str, sep: char) -> Option<Vec<String>> {
    let mut depth: i64 = 0;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut found = false;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if c == sep && depth == 0 => {
                found = true;
                parts.push(s[start..i].to_string());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if !found {
        return None;
    }
    parts.push(s[start..].to_string());
    Some(parts)
}

/// Model classes (BaseModel / TypedDict) defined at the top of a file.
pub fn collect_model_classes(
    file: &PyFile,
    typed_dicts: &mut HashSet<String>,
    known: &Models,
) -> Vec<(String, Vec<ModelField>)> {
    let mut found: Vec<(String, Vec<ModelField>)> = Vec::new();
    let root = file.tree.root_node();
    for child in named_children(root) {
        let Some(class) = unwrap_class(child) else {
            continue;
        };
        let Some(name_node) = class.child_by_field_name("name") else {
            continue;
        };
        let class_name = file.text(name_node).to_string();
        let is_base_model = inherits_base_model(class, file);
        let td = typed_dict_info(class, file, typed_dicts);
        if !is_base_model && !td.is_typed_dict {
            continue;
        }
        let mut fields = class_fields(class, file, td.is_typed_dict, td.total);
        if td.is_typed_dict {
            fields = merge_parent_fields(&td.parents, &found, known, fields);
            typed_dicts.insert(class_name.clone());
        }
        match found.iter_mut().find(|(n, _)| *n == class_name) {
            Some(slot) => slot.1 = fields,
            None => found.push((class_name, fields)),
        }
    }
    found
}

fn merge_parent_fields(
    parents: &[String],
    found: &[(String, Vec<ModelField>)],
    known: &Models,
    own: Vec<ModelField>,
) -> Vec<ModelField> {
    let mut merged: Vec<ModelField> = Vec::new();
    let parent_lists = parents.iter().filter_map(|p| {
        found
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, f)| f.clone())
            .or_else(|| known.get(p).cloned())
    });
    for field in parent_lists.flatten().chain(own) {
        match merged.iter_mut().find(|f| f.name == field.name) {
            Some(slot) => *slot = field,
            None => merged.push(field),
        }
    }
    merged
}

fn inherits_base_model(class: Node, file: &PyFile) -> bool {
    let Some(supers) = class.child_by_field_name("superclasses") else {
        return false;
    };
    all_children(supers).into_iter().any(|c| match c.kind() {
        "identifier" => {
            let name = file.text(c);
            file.imports.is_base_model(name) || name == "BaseModel"
        }
        "attribute" => file.text(c).ends_with(".BaseModel"),
        _ => false,
    })
}

struct TypedDictInfo {
    is_typed_dict: bool,
    total: bool,
    parents: Vec<String>,
}

fn typed_dict_info(class: Node, file: &PyFile, typed_dicts: &HashSet<String>) -> TypedDictInfo {
    let mut info = TypedDictInfo {
        is_typed_dict: false,
        total: true,
        parents: Vec::new(),
    };
    let Some(supers) = class.child_by_field_name("superclasses") else {
        return info;
    };
    for child in named_children(supers) {
        let t = file.text(child);
        match child.kind() {
            "identifier" if file.imports.is_typed_dict(t) || t == "TypedDict" => {
                info.is_typed_dict = true;
            }
            "identifier" if typed_dicts.contains(t) => {
                info.is_typed_dict = true;
                info.parents.push(t.to_string());
            }
            "attribute" if t.ends_with(".TypedDict") => info.is_typed_dict = true,
            "attribute" if typed_dicts.contains(t) => {
                info.is_typed_dict = true;
                info.parents.push(t.to_string());
            }
            "keyword_argument" => {
                let name = child.child_by_field_name("name").map(|n| file.text(n));
                let value = child
                    .child_by_field_name("value")
                    .map(|v| file.text(v).trim());
                if name == Some("total") && value == Some("False") {
                    info.total = false;
                }
            }
            _ => {}
        }
    }
    info
}

fn class_fields(class: Node, file: &PyFile, is_typed_dict: bool, total: bool) -> Vec<ModelField> {
    let Some(body) = class.child_by_field_name("body") else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    for child in named_children(body) {
        let node = if child.kind() == "expression_statement" && child.named_child_count() == 1 {
            child.named_child(0).unwrap_or(child)
        } else {
            child
        };
        let field = match node.kind() {
            "assignment" => annotated_assignment(node, file),
            "type" => bare_annotation(node, file),
            _ => None,
        };
        if let Some(mut field) = field {
            apply_typed_dict_qualifier(&mut field, &file.imports, is_typed_dict, total);
            fields.push(field);
        }
    }
    fields
}

fn annotated_assignment(node: Node, file: &PyFile) -> Option<ModelField> {
    let left = node.child_by_field_name("left")?;
    let type_node = node.child_by_field_name("type")?;
    if left.kind() != "identifier" {
        return None;
    }
    let ann = parse_annotation(type_node, &file.source).ok()?;
    let default = node
        .child_by_field_name("right")
        .and_then(|r| parse_literal(r, &file.source));
    Some(ModelField {
        name: file.text(left).to_string(),
        ann,
        default,
        key_required: None,
    })
}

fn bare_annotation(node: Node, file: &PyFile) -> Option<ModelField> {
    let t = file.text(node).trim();
    let (name, type_text) = t.split_once(':')?;
    let name = name.trim();
    let first = name.chars().next()?;
    if first != '_' && !first.is_ascii_alphabetic() {
        return None;
    }
    let ann = parse_type_text(type_text.trim(), 0)?;
    Some(ModelField {
        name: name.to_string(),
        ann,
        default: None,
        key_required: None,
    })
}

fn apply_typed_dict_qualifier(field: &mut ModelField, imports: &Imports, is_td: bool, total: bool) {
    if !is_td {
        return;
    }
    field.key_required = Some(total);
    let TypeAnn::Generic(name, args) = &field.ann else {
        return;
    };
    if args.len() != 1 {
        return;
    }
    let qualifier = if name == "NotRequired" || name.ends_with(".NotRequired") {
        Some(false)
    } else if name == "Required" || name.ends_with(".Required") {
        Some(true)
    } else {
        imports.typed_dict_qualifier(name)
    };
    if let Some(required) = qualifier {
        field.key_required = Some(required);
        field.ann = args[0].clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_int_parsing_accepts_python_forms() {
        assert_eq!(go_parse_int("42"), Some(42));
        assert_eq!(go_parse_int("-0x10"), Some(-16));
        assert_eq!(go_parse_int("1_000"), Some(1000));
        assert_eq!(go_parse_int("0b101"), Some(5));
        assert_eq!(go_parse_int("99999999999999999999"), None);
        assert_eq!(go_parse_int("1__0"), None);
    }

    #[test]
    fn type_text_parses_unions_generics_and_quotes() {
        let ann = parse_type_text("'Optional[list[str]]'", 0).expect("parses");
        assert_eq!(
            ann,
            TypeAnn::Generic(
                "Optional".into(),
                vec![TypeAnn::Generic(
                    "list".into(),
                    vec![TypeAnn::Simple("str".into())]
                )]
            )
        );
        assert_eq!(
            parse_type_text("int | None", 0),
            Some(TypeAnn::Union(vec![
                TypeAnn::Simple("int".into()),
                TypeAnn::Simple("None".into())
            ]))
        );
        assert_eq!(parse_type_text("a b", 0), None);
    }
}

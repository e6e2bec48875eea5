//! From a predict/train reference to the predictor's inputs, output and
//! decorator metadata, following local imports across files.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use tree_sitter::Node;

use super::error::{ErrorKind, SchemaError};
use super::model::{
    InputKind, InputType, Literal, Models, OutType, Prim, Scope, TypeAnn, resolve_input,
    resolve_output,
};
use super::pysrc::{
    PyFile, all_children, assignment_of, collect_model_classes, line_of, named_children,
    parse_annotation, parse_bool, parse_list_literal, parse_literal, parse_number,
    parse_string_literal, resolve_choices_expr, resolve_default_expr, resolve_string_expr,
    unwrap_class, unwrap_function,
};

/// Which entry point of the predictor is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `predict` / `run`.
    Predict,
    /// `train`.
    Train,
}

/// `Input(...)` keyword arguments that cog reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputCall {
    /// `default=`.
    pub default: Option<Literal>,
    /// `description=`.
    pub description: Option<String>,
    /// `ge=`.
    pub ge: Option<f64>,
    /// `le=`.
    pub le: Option<f64>,
    /// `min_length=`.
    pub min_length: Option<u64>,
    /// `max_length=`.
    pub max_length: Option<u64>,
    /// `regex=`.
    pub regex: Option<String>,
    /// `choices=`.
    pub choices: Vec<Literal>,
    /// `deprecated=`.
    pub deprecated: Option<bool>,
    /// `accept=`.
    pub accept: Option<String>,
}

/// One predictor parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct InputField {
    /// Parameter name.
    pub name: String,
    /// 0-based position (`x-order`).
    pub order: usize,
    /// Resolved type.
    pub input_type: InputType,
    /// `Input(...)` facts (or only a default for plain defaults).
    pub info: InputCall,
}

/// What the analysis learned about one target.
#[derive(Debug, Clone)]
pub struct PredictorInfo {
    /// Parameters in order.
    pub inputs: Vec<InputField>,
    /// Return type.
    pub output: OutType,
    /// Mode analysed.
    pub mode: Mode,
    /// `@cog.streaming` present.
    pub streaming: bool,
    /// `@cog.concurrent(max=N)` value.
    pub concurrency_max: Option<i64>,
    /// `async def`.
    pub is_async: bool,
    /// Warnings (deprecations) to show the user.
    pub warnings: Vec<String>,
}

/// Models, typed dicts and the `Input` registry of one loaded file.
struct FileCtx {
    file: PyFile,
    models: Models,
    typed_dicts: HashSet<String>,
    attributes: HashMap<String, InputCall>,
    methods: HashMap<String, (Vec<String>, InputCall)>,
}

/// Loads project files on demand, caching them and breaking import cycles.
struct Loader<'a> {
    project_dir: &'a Path,
    cache: HashMap<String, Option<Rc<FileCtx>>>,
    loading: HashSet<String>,
    warnings: Vec<String>,
}

const KNOWN_EXTERNAL: &[&str] = &[
    "builtins",
    "typing",
    "typing_extensions",
    "collections",
    "abc",
    "enum",
    "dataclasses",
    "os",
    "sys",
    "io",
    "json",
    "re",
    "math",
    "pathlib",
    "functools",
    "itertools",
    "contextlib",
    "concurrent",
    "asyncio",
    "multiprocessing",
    "threading",
    "logging",
    "warnings",
    "unittest",
    "pytest",
    "numpy",
    "torch",
    "tensorflow",
    "jax",
    "scipy",
    "sklearn",
    "transformers",
    "diffusers",
    "accelerate",
    "safetensors",
    "PIL",
    "cv2",
    "skimage",
    "requests",
    "httpx",
    "aiohttp",
    "fastapi",
    "flask",
    "pydantic",
    "cog",
];

fn is_known_external(module: &str) -> bool {
    let top = match module.find('.') {
        Some(i) if i > 0 => &module[..i],
        _ => module,
    };
    KNOWN_EXTERNAL.contains(&top.trim_start_matches('.'))
}

/// Lexically cleans a relative path; `None` if it escapes the project.
pub fn clean_relative(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

fn parent_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => path[..i].to_string(),
        None => String::new(),
    }
}

/// Module text → project-relative `.py` path (cog's `moduleToFilePath`).
fn module_to_path(module: &str, importer: &str) -> Option<String> {
    let clean = module.trim_start_matches('.');
    if clean.is_empty() {
        return None;
    }
    let rel_parts = clean.replace('.', "/");
    if module.starts_with('.') && !importer.is_empty() {
        let level = module.len() - clean.len();
        let mut base = parent_dir(importer);
        for _ in 1..level {
            if base.is_empty() {
                break;
            }
            base = parent_dir(&base);
        }
        let joined = if base.is_empty() {
            format!("{rel_parts}.py")
        } else {
            format!("{base}/{rel_parts}.py")
        };
        return clean_relative(&joined);
    }
    clean_relative(&format!("{rel_parts}.py"))
}

fn nested_module(module: &str, original: &str) -> String {
    if module.is_empty() || original.is_empty() {
        return module.to_string();
    }
    if module == "." {
        return format!(".{original}");
    }
    format!("{module}.{original}")
}

impl<'a> Loader<'a> {
    fn new(project_dir: &'a Path) -> Self {
        Loader {
            project_dir,
            cache: HashMap::new(),
            loading: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// Loads a module imported from `importer`, if it is a local file.
    fn load_module(&mut self, module: &str, importer: &str) -> Option<Rc<FileCtx>> {
        if is_known_external(module) {
            return None;
        }
        let rel = module_to_path(module, importer)?;
        self.load_path(&rel)
    }

    fn load_path(&mut self, rel: &str) -> Option<Rc<FileCtx>> {
        if let Some(cached) = self.cache.get(rel) {
            return cached.clone();
        }
        if self.loading.contains(rel) {
            return None;
        }
        let full = self.project_dir.join(rel);
        let bytes = match std::fs::read(&full) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warnings.push(format!(
                    "cog: warning: failed to read \"{}\": {e}",
                    full.display()
                ));
                self.cache.insert(rel.to_string(), None);
                return None;
            }
        };
        let file = PyFile::parse(rel, String::from_utf8_lossy(&bytes).into_owned())?;
        self.loading.insert(rel.to_string());
        let ctx = Rc::new(self.build_ctx(file));
        self.loading.remove(rel);
        self.cache.insert(rel.to_string(), Some(ctx.clone()));
        Some(ctx)
    }

    fn build_ctx(&mut self, file: PyFile) -> FileCtx {
        let mut typed_dicts = HashSet::new();
        let mut models: Models = HashMap::new();
        for (name, fields) in collect_model_classes(&file, &mut typed_dicts, &models) {
            models.insert(name, fields);
        }
        self.resolve_imported_models(&file, &mut models, &mut typed_dicts);
        for (name, fields) in collect_model_classes(&file, &mut typed_dicts, &models) {
            models.insert(name, fields);
        }
        let (attributes, methods) = collect_input_registry(&file);
        FileCtx {
            file,
            models,
            typed_dicts,
            attributes,
            methods,
        }
    }

    fn resolve_imported_models(
        &mut self,
        file: &PyFile,
        models: &mut Models,
        typed_dicts: &mut HashSet<String>,
    ) {
        for (local, entry) in file.imports.entries().to_vec() {
            let mut nested = false;
            let mut loaded = self.load_module(&entry.module, &file.rel_path);
            if loaded.is_none() {
                let nested_name = nested_module(&entry.module, &entry.original);
                if nested_name != entry.module {
                    loaded = self.load_module(&nested_name, &file.rel_path);
                    nested = true;
                }
            }
            let Some(module) = loaded else {
                if let Some(fields) = models.get(&entry.original).cloned() {
                    models.insert(local.clone(), fields);
                }
                if typed_dicts.contains(&entry.original) {
                    typed_dicts.insert(local.clone());
                }
                continue;
            };
            for (name, fields) in &module.models {
                models.insert(format!("{local}.{name}"), fields.clone());
            }
            for name in &module.typed_dicts {
                typed_dicts.insert(format!("{local}.{name}"));
            }
            if nested || entry.original == entry.module || entry.module == "." {
                continue;
            }
            if let Some(fields) = module.models.get(&entry.original) {
                models.insert(local.clone(), fields.clone());
            }
            if module.typed_dicts.contains(&entry.original) {
                typed_dicts.insert(local.clone());
            }
            for (name, fields) in &module.models {
                models.entry(name.clone()).or_insert_with(|| fields.clone());
            }
            for name in &module.typed_dicts {
                typed_dicts.insert(name.clone());
            }
        }
    }
}

fn is_input_call(node: Node, file: &PyFile) -> bool {
    if node.kind() != "call" {
        return false;
    }
    let Some(function) = node.child_by_field_name("function") else {
        return false;
    };
    let name = file.text(function);
    name == "Input" || file.imports.is_cog(name, "Input")
}

type Registry = (
    HashMap<String, InputCall>,
    HashMap<String, (Vec<String>, InputCall)>,
);

fn collect_input_registry(file: &PyFile) -> Registry {
    let mut attributes = HashMap::new();
    let mut methods = HashMap::new();
    for child in named_children(file.tree.root_node()) {
        let Some(class) = unwrap_class(child) else {
            continue;
        };
        let (Some(name), Some(body)) = (
            class.child_by_field_name("name"),
            class.child_by_field_name("body"),
        ) else {
            continue;
        };
        let class_name = file.text(name);
        for stmt in named_children(body) {
            if let Some(assign) = assignment_of(stmt)
                && let Some((attr, call)) = input_attribute(assign, file)
            {
                attributes.insert(format!("{class_name}.{attr}"), call);
            }
            if let Some(function) = unwrap_function(stmt)
                && let Some((method, entry)) = input_method(function, file)
            {
                methods.insert(format!("{class_name}.{method}"), entry);
            }
        }
    }
    (attributes, methods)
}

fn input_attribute(assign: Node, file: &PyFile) -> Option<(String, InputCall)> {
    let left = assign.child_by_field_name("left")?;
    if left.kind() != "identifier" {
        return None;
    }
    let right = assign.child_by_field_name("right")?;
    if !is_input_call(right, file) {
        return None;
    }
    let attr = file.text(left).to_string();
    let call = parse_input_call(right, file, &attr).ok()?;
    Some((attr, call))
}

fn input_method(function: Node, file: &PyFile) -> Option<(String, (Vec<String>, InputCall))> {
    let name = file.text(function.child_by_field_name("name")?).to_string();
    let params = function.child_by_field_name("parameters")?;
    let param_names = method_param_names(params, file);
    let body = function.child_by_field_name("body")?;
    let call = named_children(body).into_iter().find_map(|stmt| {
        let expr = (stmt.kind() == "return_statement")
            .then(|| stmt.named_child(0))
            .flatten()?;
        is_input_call(expr, file).then_some(expr)
    })?;
    let info = parse_input_call(call, file, &name).ok()?;
    Some((name, (param_names, info)))
}

fn method_param_names(params: Node, file: &PyFile) -> Vec<String> {
    let mut names = Vec::new();
    for param in all_children(params) {
        let name = match param.kind() {
            "identifier" => Some(file.text(param)),
            "typed_parameter" => named_children(param)
                .into_iter()
                .find(|c| c.kind() == "identifier")
                .map(|c| file.text(c)),
            "typed_default_parameter" | "default_parameter" => {
                param.child_by_field_name("name").map(|n| file.text(n))
            }
            _ => None,
        };
        if let Some(n) = name.filter(|n| *n != "self" && *n != "cls") {
            names.push(n.to_string());
        }
    }
    names
}

fn parse_input_call(node: Node, file: &PyFile, param: &str) -> Result<InputCall, (String, usize)> {
    let mut info = InputCall::default();
    let Some(args) = node.child_by_field_name("arguments") else {
        return Ok(info);
    };
    for arg in named_children(args) {
        if arg.kind() != "keyword_argument" {
            continue;
        }
        let (Some(key), Some(value)) = (
            arg.child_by_field_name("name"),
            arg.child_by_field_name("value"),
        ) else {
            continue;
        };
        apply_input_kwarg(&mut info, file.text(key), value, file, param)
            .map_err(|msg| (msg, line_of(arg)))?;
    }
    Ok(info)
}

fn apply_input_kwarg(
    info: &mut InputCall,
    key: &str,
    value: Node,
    file: &PyFile,
    param: &str,
) -> Result<(), String> {
    let src = file.source.as_str();
    match key {
        "default" => {
            info.default =
                Some(resolve_default_expr(value, src, &file.constants).unwrap_or(Literal::None));
        }
        "default_factory" => {
            return Err(format!(
                "parameter '{param}': default_factory is not supported in static schema generation"
            ));
        }
        "description" => {
            if let Some(s) = resolve_string_expr(value, src, &file.constants) {
                info.description = Some(s);
            }
        }
        "ge" => info.ge = parse_number(value, src).or(info.ge),
        "le" => info.le = parse_number(value, src).or(info.le),
        "min_length" => {
            info.min_length = parse_number(value, src)
                .map(|n| n as u64)
                .or(info.min_length)
        }
        "max_length" => {
            info.max_length = parse_number(value, src)
                .map(|n| n as u64)
                .or(info.max_length)
        }
        "regex" => info.regex = parse_string_literal(value, src).or(info.regex.take()),
        "choices" => {
            let items = parse_list_literal(value, src)
                .or_else(|| resolve_choices_expr(value, src, &file.constants, 0));
            match items {
                Some(items) => info.choices = items,
                None => {
                    return Err(format!(
                        "parameter '{param}': choices expression cannot be statically resolved"
                    ));
                }
            }
        }
        "deprecated" => info.deprecated = parse_bool(value, src).or(info.deprecated),
        "accept" => info.accept = parse_string_literal(value, src).or(info.accept.take()),
        _ => {}
    }
    Ok(())
}

/// The function chosen as the target, and the file it lives in.
struct Target {
    function_index: FunctionRef,
    ctx: Rc<FileCtx>,
}

/// A function node addressed by its byte range (nodes borrow their tree).
#[derive(Clone, Copy)]
struct FunctionRef {
    start: usize,
    end: usize,
}

impl FunctionRef {
    fn of(node: Node) -> Self {
        FunctionRef {
            start: node.start_byte(),
            end: node.end_byte(),
        }
    }

    fn find<'t>(&self, file: &'t PyFile) -> Option<Node<'t>> {
        let root = file.tree.root_node();
        let mut node = root.descendant_for_byte_range(self.start, self.end)?;
        loop {
            if node.kind() == "function_definition"
                && node.start_byte() == self.start
                && node.end_byte() == self.end
            {
                return Some(node);
            }
            node = node.parent()?;
        }
    }
}

fn top_level_class<'t>(file: &'t PyFile, name: &str) -> Option<Node<'t>> {
    named_children(file.tree.root_node())
        .into_iter()
        .filter_map(unwrap_class)
        .find(|c| c.child_by_field_name("name").map(|n| file.text(n)) == Some(name))
}

fn top_level_function<'t>(file: &'t PyFile, name: &str) -> Option<Node<'t>> {
    named_children(file.tree.root_node())
        .into_iter()
        .filter_map(unwrap_function)
        .find(|f| f.child_by_field_name("name").map(|n| file.text(n)) == Some(name))
}

fn class_methods<'t>(class: Node<'t>, file: &'t PyFile) -> Vec<(String, Node<'t>)> {
    let Some(body) = class.child_by_field_name("body") else {
        return Vec::new();
    };
    named_children(body)
        .into_iter()
        .filter_map(unwrap_function)
        .filter_map(|f| {
            let name = file.text(f.child_by_field_name("name")?).to_string();
            Some((name, f))
        })
        .collect()
}

fn class_parents(class: Node, file: &PyFile) -> Vec<String> {
    let Some(supers) = class.child_by_field_name("superclasses") else {
        return Vec::new();
    };
    named_children(supers)
        .into_iter()
        .filter(|c| c.kind() == "identifier" || c.kind() == "attribute")
        .map(|c| file.text(c).to_string())
        .collect()
}

fn err_at(kind: ErrorKind, message: String, file: &PyFile, line: Option<usize>) -> SchemaError {
    SchemaError::new(kind, message).at(&file.rel_path, line)
}

impl Loader<'_> {
    fn find_target(
        &mut self,
        ctx: &Rc<FileCtx>,
        name: &str,
        mode: Mode,
    ) -> Result<Target, SchemaError> {
        let file = &ctx.file;
        if let Some(class) = top_level_class(file, name) {
            return match mode {
                Mode::Predict => self.find_predict_method(ctx, class, name),
                Mode::Train => class_methods(class, file)
                    .into_iter()
                    .find(|(n, _)| n == "train")
                    .map(|(_, f)| Target {
                        function_index: FunctionRef::of(f),
                        ctx: ctx.clone(),
                    })
                    .ok_or_else(|| {
                        err_at(
                            ErrorKind::MethodNotFound,
                            format!("{name}.train not found"),
                            file,
                            Some(line_of(class)),
                        )
                    }),
            };
        }
        let fallback = match mode {
            Mode::Predict => "predict",
            Mode::Train => "train",
        };
        let function = top_level_function(file, name).or_else(|| {
            (name != fallback)
                .then(|| top_level_function(file, fallback))
                .flatten()
        });
        match function {
            Some(f) => Ok(Target {
                function_index: FunctionRef::of(f),
                ctx: ctx.clone(),
            }),
            None => Err(err_at(
                ErrorKind::PredictorNotFound,
                format!("predictor not found: {name}"),
                file,
                None,
            )),
        }
    }

    fn find_predict_method(
        &mut self,
        ctx: &Rc<FileCtx>,
        class: Node,
        name: &str,
    ) -> Result<Target, SchemaError> {
        let mut seen = HashSet::new();
        let (run, predict) = self.collect_predict_methods(ctx, class, name, &mut seen, 0);
        if let Some(run) = run {
            return Ok(run);
        }
        if let Some(predict) = predict {
            self.warnings.push(format!(
                "cog: warning: {name}.predict() is deprecated; use run() instead"
            ));
            return Ok(predict);
        }
        Err(err_at(
            ErrorKind::MethodNotFound,
            format!("{name} must define run() or predict()"),
            &ctx.file,
            Some(line_of(class)),
        ))
    }

    fn collect_predict_methods(
        &mut self,
        ctx: &Rc<FileCtx>,
        class: Node,
        class_name: &str,
        seen: &mut HashSet<(String, String)>,
        depth: usize,
    ) -> (Option<Target>, Option<Target>) {
        if depth > super::model::MAX_DEPTH
            || !seen.insert((ctx.file.rel_path.clone(), class_name.to_string()))
        {
            return (None, None);
        }
        let mut run = None;
        let mut predict = None;
        for (method, f) in class_methods(class, &ctx.file) {
            let target = || Target {
                function_index: FunctionRef::of(f),
                ctx: ctx.clone(),
            };
            match method.as_str() {
                "run" => run = Some(target()),
                "predict" => predict = Some(target()),
                _ => {}
            }
        }
        for parent in class_parents(class, &ctx.file) {
            let Some((parent_ctx, parent_class)) = self.resolve_parent(ctx, &parent) else {
                continue;
            };
            let Some(parent_node) = top_level_class(&parent_ctx.file, &parent_class) else {
                continue;
            };
            let (parent_run, parent_predict) = self.collect_predict_methods(
                &parent_ctx,
                parent_node,
                &parent_class,
                seen,
                depth + 1,
            );
            run = run.or(parent_run);
            predict = predict.or(parent_predict);
        }
        (run, predict)
    }

    fn resolve_parent(&mut self, ctx: &Rc<FileCtx>, parent: &str) -> Option<(Rc<FileCtx>, String)> {
        if top_level_class(&ctx.file, parent).is_some() {
            return Some((ctx.clone(), parent.to_string()));
        }
        let (entry, class_name) = match parent.split_once('.') {
            Some((head, rest)) => (ctx.file.imports.get(head)?.clone(), rest.to_string()),
            None => {
                let entry = ctx.file.imports.get(parent)?.clone();
                let original = entry.original.clone();
                (entry, original)
            }
        };
        let importer = ctx.file.rel_path.clone();
        let loaded = self.load_module(&entry.module, &importer).or_else(|| {
            self.load_module(&nested_module(&entry.module, &entry.original), &importer)
        })?;
        top_level_class(&loaded.file, &class_name)?;
        Some((loaded, class_name))
    }
}

/// Analyses `file_ref:name` in `project_dir`.
pub fn analyze(
    project_dir: &Path,
    rel_path: &str,
    name: &str,
    mode: Mode,
    literal_enums: bool,
) -> Result<PredictorInfo, SchemaError> {
    let mut loader = Loader::new(project_dir);
    let full: PathBuf = project_dir.join(rel_path);
    let bytes = std::fs::read(&full).map_err(|e| {
        SchemaError::new(
            ErrorKind::Io,
            format!("failed to read predictor source {}: {e}", full.display()),
        )
    })?;
    let source = String::from_utf8_lossy(&bytes).into_owned();
    let file = PyFile::parse(rel_path, source).ok_or_else(|| {
        SchemaError::new(
            ErrorKind::Parse,
            "failed to parse Python source: tree-sitter parse failed".to_string(),
        )
        .at(rel_path, None)
    })?;
    let syntax_error = file.first_syntax_error();
    loader.loading.insert(rel_path.to_string());
    let ctx = Rc::new(loader.build_ctx(file));
    loader.loading.remove(rel_path);
    loader.cache.insert(rel_path.to_string(), Some(ctx.clone()));

    let result = analyze_target(&mut loader, &ctx, name, mode, literal_enums);
    match (result, syntax_error) {
        (Ok(mut info), Some(line)) => {
            info.warnings.push(format!(
                "{rel_path}:{line}: the predictor has a syntax error; the schema was generated from the parts that parse"
            ));
            Ok(info)
        }
        (Err(e), Some(line)) => Err(e.with_syntax_note(rel_path, line)),
        (result, None) => result,
    }
}

fn analyze_target(
    loader: &mut Loader,
    ctx: &Rc<FileCtx>,
    name: &str,
    mode: Mode,
    literal_enums: bool,
) -> Result<PredictorInfo, SchemaError> {
    let target = loader.find_target(ctx, name, mode)?;
    let tctx = target.ctx.clone();
    let file = &tctx.file;
    let function = target.function_index.find(file).ok_or_else(|| {
        err_at(
            ErrorKind::Parse,
            "failed to parse Python source: target function vanished".to_string(),
            file,
            None,
        )
    })?;
    let method_name = function
        .child_by_field_name("name")
        .map(|n| file.text(n).to_string())
        .unwrap_or_else(|| "predict".to_string());
    let scope = Scope {
        imports: &file.imports,
        models: &tctx.models,
        typed_dicts: &tctx.typed_dicts,
        literal_enums,
    };
    let params = function.child_by_field_name("parameters").ok_or_else(|| {
        err_at(
            ErrorKind::Parse,
            "function has no parameters node".to_string(),
            file,
            Some(line_of(function)),
        )
    })?;
    let inputs = extract_inputs(params, &tctx, &scope, &method_name)?;
    let is_async = all_children(function).iter().any(|c| c.kind() == "async");
    let output = resolve_return(function, file, &scope, &method_name)?;
    let decorators = decorator_nodes(function);
    let streaming = decorators
        .iter()
        .any(|d| is_cog_decorator(*d, file, "streaming"));
    if streaming && !output.is_iterator() {
        return Err(err_at(
            ErrorKind::UnsupportedType,
            "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] or AsyncConcatenateIterator[...] return type".to_string(),
            file,
            Some(line_of(function)),
        ));
    }
    let concurrency_max = concurrency_from_decorators(&decorators, file)?;
    if concurrency_max.is_some_and(|m| m > 1) && !is_async {
        return Err(err_at(
            ErrorKind::UnsupportedType,
            "@concurrent(max > 1) requires an async run() or predict() method".to_string(),
            file,
            Some(line_of(function)),
        ));
    }
    Ok(PredictorInfo {
        inputs,
        output,
        mode,
        streaming,
        concurrency_max,
        is_async,
        warnings: std::mem::take(&mut loader.warnings),
    })
}

fn resolve_return(
    function: Node,
    file: &PyFile,
    scope: &Scope,
    method_name: &str,
) -> Result<OutType, SchemaError> {
    let Some(return_node) = function.child_by_field_name("return_type") else {
        return Err(err_at(
            ErrorKind::MissingReturnType,
            format!("missing return type annotation on {method_name}"),
            file,
            Some(line_of(function)),
        ));
    };
    let line = Some(line_of(return_node));
    let ann = parse_annotation(return_node, &file.source)
        .map_err(|m| err_at(ErrorKind::UnsupportedType, m, file, line))?;
    resolve_output(&ann, scope).map_err(|m| err_at(ErrorKind::classify(&m), m, file, line))
}

fn extract_inputs(
    params: Node,
    ctx: &FileCtx,
    scope: &Scope,
    method_name: &str,
) -> Result<Vec<InputField>, SchemaError> {
    let file = &ctx.file;
    let skip_self = all_children(params)
        .into_iter()
        .find(|c| c.kind() == "identifier")
        .is_some_and(|c| file.text(c) == "self");
    let mut inputs: Vec<InputField> = Vec::new();
    let mut seen_self = false;
    let mut order = 0;
    for child in all_children(params) {
        let field = match child.kind() {
            "identifier" => {
                if skip_self && !seen_self && file.text(child) == "self" {
                    seen_self = true;
                }
                continue;
            }
            "typed_parameter" => typed_parameter(child, ctx, scope, method_name, order)?,
            "typed_default_parameter" => {
                typed_default_parameter(child, ctx, scope, method_name, order)?
            }
            "default_parameter" => {
                let name = child
                    .child_by_field_name("name")
                    .map_or("<unknown>", |n| file.text(n));
                return Err(err_at(
                    ErrorKind::MissingTypeAnnotation,
                    format!("parameter '{name}' on {method_name} has no type annotation"),
                    file,
                    Some(line_of(child)),
                ));
            }
            _ => continue,
        };
        validate_field(&field, file, line_of(child))?;
        order += 1;
        match inputs.iter_mut().find(|f| f.name == field.name) {
            Some(slot) => *slot = field,
            None => inputs.push(field),
        }
    }
    Ok(inputs)
}

fn validate_field(field: &InputField, file: &PyFile, line: usize) -> Result<(), SchemaError> {
    let i = &field.info;
    let constrained = !i.choices.is_empty()
        || i.ge.is_some()
        || i.le.is_some()
        || i.min_length.is_some()
        || i.max_length.is_some()
        || i.regex.is_some();
    if matches!(field.input_type.kind, InputKind::Union(_)) && constrained {
        return Err(err_at(
            ErrorKind::UnsupportedType,
            "unsupported type: constraints and choices are not supported on union inputs"
                .to_string(),
            file,
            Some(line),
        ));
    }
    Ok(())
}

fn resolve_param_type(
    type_node: Node,
    file: &PyFile,
    scope: &Scope,
) -> Result<InputType, SchemaError> {
    let line = Some(line_of(type_node));
    let ann: TypeAnn = parse_annotation(type_node, &file.source)
        .map_err(|m| err_at(ErrorKind::UnsupportedType, m, file, line))?;
    resolve_input(&ann, scope, 0).map_err(|m| err_at(ErrorKind::classify(&m), m, file, line))
}

fn typed_parameter(
    node: Node,
    ctx: &FileCtx,
    scope: &Scope,
    method_name: &str,
    order: usize,
) -> Result<InputField, SchemaError> {
    let file = &ctx.file;
    let children = named_children(node);
    let name = children
        .iter()
        .find(|c| c.kind() == "identifier")
        .map(|c| file.text(*c));
    let Some(name) = name else {
        return Err(err_at(
            ErrorKind::Parse,
            "typed_parameter has no identifier".to_string(),
            file,
            Some(line_of(node)),
        ));
    };
    let Some(type_node) = children.iter().find(|c| c.kind() == "type") else {
        return Err(err_at(
            ErrorKind::MissingTypeAnnotation,
            format!("parameter '{name}' on {method_name} has no type annotation"),
            file,
            Some(line_of(node)),
        ));
    };
    Ok(InputField {
        name: name.to_string(),
        order,
        input_type: resolve_param_type(*type_node, file, scope)?,
        info: InputCall::default(),
    })
}

fn typed_default_parameter(
    node: Node,
    ctx: &FileCtx,
    scope: &Scope,
    method_name: &str,
    order: usize,
) -> Result<InputField, SchemaError> {
    let file = &ctx.file;
    let line = Some(line_of(node));
    let name = node
        .child_by_field_name("name")
        .map(|n| file.text(n).to_string())
        .ok_or_else(|| {
            err_at(
                ErrorKind::Parse,
                "typed_default_parameter has no name".to_string(),
                file,
                line,
            )
        })?;
    let type_node = node.child_by_field_name("type").ok_or_else(|| {
        err_at(
            ErrorKind::MissingTypeAnnotation,
            format!("parameter '{name}' on {method_name} has no type annotation"),
            file,
            line,
        )
    })?;
    let input_type = resolve_param_type(type_node, file, scope)?;
    let Some(value) = node.child_by_field_name("value") else {
        return Ok(InputField {
            name,
            order,
            input_type,
            info: InputCall::default(),
        });
    };
    let info = default_info(value, ctx, &name)?;
    let accepts_files = matches!(input_type.field_prim(), Prim::Path | Prim::File);
    if info.accept.is_some() && !accepts_files {
        return Err(err_at(
            ErrorKind::AcceptOnNonFileType,
            format!("accept is only valid on Path or File inputs (parameter '{name}')"),
            file,
            line,
        ));
    }
    Ok(InputField {
        name,
        order,
        input_type,
        info,
    })
}

fn default_info(value: Node, ctx: &FileCtx, name: &str) -> Result<InputCall, SchemaError> {
    let file = &ctx.file;
    if is_input_call(value, file) {
        return parse_input_call(value, file, name).map_err(|(m, line)| {
            let kind = if m.contains("default_factory") {
                ErrorKind::DefaultFactoryNotSupported
            } else {
                ErrorKind::ChoicesNotResolvable
            };
            err_at(kind, m, file, Some(line))
        });
    }
    if let Some(info) = input_reference(value, ctx) {
        return Ok(info);
    }
    if let Some(default) = resolve_default_expr(value, &file.source, &file.constants) {
        return Ok(InputCall {
            default: Some(default),
            ..InputCall::default()
        });
    }
    Err(err_at(
        ErrorKind::DefaultNotResolvable,
        format!(
            "parameter '{name}': default `{}` cannot be statically resolved",
            file.text(value)
        ),
        file,
        Some(line_of(value)),
    ))
}

fn input_reference(node: Node, ctx: &FileCtx) -> Option<InputCall> {
    let file = &ctx.file;
    match node.kind() {
        "attribute" => ctx.attributes.get(file.text(node)).cloned(),
        "call" => {
            let function = node.child_by_field_name("function")?;
            if function.kind() != "attribute" {
                return None;
            }
            let (param_names, base) = ctx.methods.get(file.text(function))?;
            let mut resolved = base.clone();
            if let Some(args) = node.child_by_field_name("arguments") {
                apply_call_site_args(&mut resolved, args, param_names, file);
            }
            Some(resolved)
        }
        _ => None,
    }
}

fn apply_call_site_args(
    resolved: &mut InputCall,
    args: Node,
    param_names: &[String],
    file: &PyFile,
) {
    let src = file.source.as_str();
    let mut values: Vec<(String, Node)> = Vec::new();
    let mut positional = 0;
    for arg in named_children(args) {
        if arg.kind() == "keyword_argument" {
            if let (Some(k), Some(v)) = (
                arg.child_by_field_name("name"),
                arg.child_by_field_name("value"),
            ) {
                values.retain(|(n, _)| n != file.text(k));
                values.push((file.text(k).to_string(), v));
            }
        } else if positional < param_names.len() {
            values.retain(|(n, _)| *n != param_names[positional]);
            values.push((param_names[positional].clone(), arg));
            positional += 1;
        }
    }
    for (param, value) in values {
        match param.as_str() {
            "default" => resolved.default = parse_literal(value, src).or(resolved.default.take()),
            "description" => {
                resolved.description =
                    parse_string_literal(value, src).or(resolved.description.take())
            }
            "ge" => resolved.ge = parse_number(value, src).or(resolved.ge),
            "le" => resolved.le = parse_number(value, src).or(resolved.le),
            _ => {}
        }
    }
}

fn decorator_nodes(function: Node) -> Vec<Node> {
    match function.parent() {
        Some(p) if p.kind() == "decorated_definition" => named_children(p)
            .into_iter()
            .filter(|c| c.kind() == "decorator")
            .collect(),
        _ => Vec::new(),
    }
}

fn decorator_expression(decorator: Node) -> Option<Node> {
    let first = decorator.named_child(0)?;
    if first.kind() == "call" {
        return first.child_by_field_name("function");
    }
    Some(first)
}

fn is_cog_decorator(decorator: Node, file: &PyFile, what: &str) -> bool {
    let Some(expr) = decorator_expression(decorator) else {
        return false;
    };
    let t = file.text(expr);
    match expr.kind() {
        "attribute" => match t.split_once('.') {
            Some((head, attr)) if attr == what => file
                .imports
                .get(head)
                .is_some_and(|e| e.module == "cog" && e.original == "cog"),
            _ => false,
        },
        "identifier" => file.imports.is_cog(t, what),
        _ => false,
    }
}

fn concurrency_from_decorators(
    decorators: &[Node],
    file: &PyFile,
) -> Result<Option<i64>, SchemaError> {
    for decorator in decorators {
        if !is_cog_decorator(*decorator, file, "concurrent") {
            continue;
        }
        let line = Some(line_of(*decorator));
        let fail = |m: &str| err_at(ErrorKind::UnsupportedType, m.to_string(), file, line);
        let call = decorator.named_child(0).filter(|c| c.kind() == "call");
        let args = call
            .and_then(|c| {
                named_children(c)
                    .into_iter()
                    .find(|n| n.kind() == "argument_list")
            })
            .map(named_children)
            .unwrap_or_default();
        if args.is_empty() {
            return Ok(Some(1));
        }
        let only_max_kwarg = args.len() == 1
            && args[0].kind() == "keyword_argument"
            && args[0].child_by_field_name("name").map(|n| file.text(n)) == Some("max");
        if !only_max_kwarg {
            return Err(fail(
                "@concurrent only supports literal integer max=... arguments",
            ));
        }
        let value = args[0]
            .child_by_field_name("value")
            .and_then(|v| parse_literal(v, &file.source));
        let Some(Literal::Int(max)) = value else {
            return Err(fail("@concurrent max must be an integer literal"));
        };
        if max < 1 {
            return Err(fail("@concurrent max must be at least 1"));
        }
        return Ok(Some(max));
    }
    Ok(None)
}

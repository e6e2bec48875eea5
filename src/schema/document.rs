//! Assembles the OpenAPI document exactly as cog does (key order, fixed
//! components and paths, post-processing) and merges predict + train.

use super::analyze::{InputField, Mode, PredictorInfo};
use super::gojson::{Json, Obj};
use super::model::{InputKind, Literal, Prim, title_case};

fn s(v: &str) -> Json {
    Json::str(v)
}

fn m() -> Obj {
    Obj::map()
}

fn reference(name: &str) -> Json {
    Json::Obj(m().with("$ref", s(&format!("#/components/schemas/{name}"))))
}

fn titled(title: &str, kind: &str) -> Json {
    Json::Obj(m().with("title", s(title)).with("type", s(kind)))
}

struct Names {
    endpoint: &'static str,
    request: &'static str,
    response: &'static str,
    cancel: &'static str,
    summary: &'static str,
    description: &'static str,
    operation: &'static str,
    cancel_operation: &'static str,
    cancel_param: &'static str,
    input: &'static str,
    output: &'static str,
}

fn names(mode: Mode) -> Names {
    match mode {
        Mode::Train => Names {
            endpoint: "/trainings",
            request: "TrainingRequest",
            response: "TrainingResponse",
            cancel: "/trainings/{training_id}/cancel",
            summary: "Train",
            description: "Run a single training on the model",
            operation: "train_trainings_post",
            cancel_operation: "cancel_trainings__training_id__cancel_post",
            cancel_param: "training_id",
            input: "TrainingInput",
            output: "TrainingOutput",
        },
        Mode::Predict => Names {
            endpoint: "/predictions",
            request: "PredictionRequest",
            response: "PredictionResponse",
            cancel: "/predictions/{prediction_id}/cancel",
            summary: "Predict",
            description: "Run a single prediction on the model",
            operation: "predict_predictions_post",
            cancel_operation: "cancel_predictions__prediction_id__cancel_post",
            cancel_param: "prediction_id",
            input: "Input",
            output: "Output",
        },
    }
}

/// Builds the post-processed document tree for one mode.
pub fn build_document(info: &PredictorInfo, version: &str) -> Json {
    let n = names(info.mode);
    let (mut input_schema, enums) = input_schema(&info.inputs);
    input_schema.set("title", s(n.input));
    let mut components = Obj::ordered();
    components.set(n.input, Json::Obj(input_schema));
    components.set(n.output, Json::Obj(info.output.json_schema(true)));
    for (name, schema) in enums {
        components.set(&name, Json::Obj(schema));
    }
    add_fixed_components(&mut components, &n);
    let paths = paths(&n, info.mode == Mode::Predict && info.streaming);
    let mut doc = Json::Obj(
        m().with("openapi", s("3.0.2"))
            .with(
                "info",
                Json::Obj(m().with("title", s("Cog")).with("version", s(version))),
            )
            .with("paths", Json::Obj(paths))
            .with(
                "components",
                Json::Obj(m().with("schemas", Json::Obj(components))),
            ),
    );
    remove_title_next_to_ref(&mut doc);
    fix_nullable_any_of(&mut doc);
    doc
}

fn add_fixed_components(components: &mut Obj, n: &Names) {
    let id = titled("Id", "string");
    components.set(
        n.request,
        Json::Obj(
            m().with("title", s(n.request))
                .with("type", s("object"))
                .with(
                    "properties",
                    Json::Obj(m().with("id", id.clone()).with("input", reference(n.input))),
                ),
        ),
    );
    let date = |t: &str| {
        Json::Obj(
            m().with("title", s(t))
                .with("type", s("string"))
                .with("format", s("date-time")),
        )
    };
    let response_props = m()
        .with("input", reference(n.input))
        .with("output", reference(n.output))
        .with("id", id)
        .with("version", titled("Version", "string"))
        .with("created_at", date("Created At"))
        .with("started_at", date("Started At"))
        .with("completed_at", date("Completed At"))
        .with("status", titled("Status", "string"))
        .with("error", titled("Error", "string"))
        .with("logs", titled("Logs", "string"))
        .with("metrics", titled("Metrics", "object"));
    components.set(
        n.response,
        Json::Obj(
            m().with("title", s(n.response))
                .with("type", s("object"))
                .with("properties", Json::Obj(response_props)),
        ),
    );
    let statuses = ["starting", "processing", "succeeded", "canceled", "failed"];
    components.set(
        "Status",
        Json::Obj(
            m().with("title", s("Status"))
                .with("description", s("An enumeration."))
                .with("enum", Json::Arr(statuses.iter().map(|v| s(v)).collect()))
                .with("type", s("string")),
        ),
    );
    let detail = m()
        .with("title", s("Detail"))
        .with("type", s("array"))
        .with("items", reference("ValidationError"));
    components.set(
        "HTTPValidationError",
        Json::Obj(
            m().with("title", s("HTTPValidationError"))
                .with("type", s("object"))
                .with(
                    "properties",
                    Json::Obj(m().with("detail", Json::Obj(detail))),
                ),
        ),
    );
    let loc_items = m().with(
        "anyOf",
        Json::Arr(vec![
            Json::Obj(m().with("type", s("string"))),
            Json::Obj(m().with("type", s("integer"))),
        ]),
    );
    let loc = m()
        .with("title", s("Location"))
        .with("type", s("array"))
        .with("items", Json::Obj(loc_items));
    components.set(
        "ValidationError",
        Json::Obj(
            m().with("title", s("ValidationError"))
                .with("required", Json::Arr(vec![s("loc"), s("msg"), s("type")]))
                .with("type", s("object"))
                .with(
                    "properties",
                    Json::Obj(
                        m().with("loc", Json::Obj(loc))
                            .with("msg", titled("Message", "string"))
                            .with("type", titled("Error Type", "string")),
                    ),
                ),
        ),
    );
}

fn json_content(schema: Json) -> Json {
    Json::Obj(m().with("application/json", Json::Obj(m().with("schema", schema))))
}

fn response(description: &str, schema: Json) -> Json {
    Json::Obj(
        m().with("description", s(description))
            .with("content", json_content(schema)),
    )
}

fn simple_get(summary: &str, operation: &str) -> Json {
    Json::Obj(
        m().with(
            "get",
            Json::Obj(
                m().with("summary", s(summary))
                    .with("operationId", s(operation))
                    .with(
                        "responses",
                        Json::Obj(m().with("200", response("Successful Response", Json::Obj(m())))),
                    ),
            ),
        ),
    )
}

fn paths(n: &Names, streaming: bool) -> Obj {
    let mut paths = Obj::ordered();
    paths.set("/", simple_get("Root", "root__get"));
    paths.set(
        "/health-check",
        simple_get("Healthcheck", "healthcheck_health_check_get"),
    );
    let validation = response("Validation Error", reference("HTTPValidationError"));
    let mut main = m()
        .with("summary", s(n.summary))
        .with("description", s(n.description))
        .with("operationId", s(n.operation))
        .with(
            "requestBody",
            Json::Obj(m().with("content", json_content(reference(n.request)))),
        )
        .with(
            "responses",
            Json::Obj(
                m().with(
                    "200",
                    response("Successful Response", reference(n.response)),
                )
                .with("422", validation.clone()),
            ),
        );
    if streaming {
        main.set("x-cog-streaming", Json::Bool(true));
    }
    paths.set(n.endpoint, Json::Obj(m().with("post", Json::Obj(main))));
    let parameter = m()
        .with("required", Json::Bool(true))
        .with("schema", titled(&title_case(n.cancel_param), "string"))
        .with("name", s(n.cancel_param))
        .with("in", s("path"));
    let cancel = m()
        .with("summary", s("Cancel"))
        .with("operationId", s(n.cancel_operation))
        .with("parameters", Json::Arr(vec![Json::Obj(parameter)]))
        .with(
            "responses",
            Json::Obj(
                m().with("200", response("Successful Response", Json::Obj(m())))
                    .with("422", validation),
            ),
        );
    paths.set(n.cancel, Json::Obj(m().with("post", Json::Obj(cancel))));
    paths
}

fn choices_of(field: &InputField) -> Option<(Prim, Vec<Literal>)> {
    if !field.info.choices.is_empty() {
        return Some((field.input_type.field_prim(), field.info.choices.clone()));
    }
    match &field.input_type.kind {
        InputKind::Literal(prim, values) => Some((*prim, values.clone())),
        _ => None,
    }
}

fn input_schema(inputs: &[InputField]) -> (Obj, Vec<(String, Obj)>) {
    let mut properties = Obj::ordered();
    let mut required = Vec::new();
    let mut enums = Vec::new();
    for field in inputs {
        let mut prop = m().with("x-order", Json::Int(field.order as i64));
        if let Some((prim, values)) = choices_of(field) {
            let component = m()
                .with("title", s(&field.name))
                .with("description", s("An enumeration."))
                .with(
                    "enum",
                    Json::Arr(values.iter().map(Literal::to_json).collect()),
                )
                .with("type", s(prim.json_type_word()));
            enums.push((field.name.clone(), component));
            prop.set("allOf", Json::Arr(vec![reference(&field.name)]));
        } else {
            prop.set("title", Json::Str(title_case(&field.name)));
            for (k, v) in field.input_type.json_schema().entries() {
                prop.set(k, v.clone());
            }
        }
        if add_constraints(&mut prop, field) {
            required.push(s(&field.name));
        }
        properties.set(&field.name, Json::Obj(prop));
    }
    let mut schema = m()
        .with("title", s("Input"))
        .with("type", s("object"))
        .with("properties", Json::Obj(properties));
    if !required.is_empty() {
        schema.set("required", Json::Arr(required));
    }
    (schema, enums)
}

/// Adds default/nullable/description/constraints; returns whether required.
fn add_constraints(prop: &mut Obj, field: &InputField) -> bool {
    let t = &field.input_type;
    let info = &field.info;
    let default_is_none = matches!(info.default, Some(Literal::None));
    let secret_none = t.field_prim() == Prim::Secret && t.is_required_scalar() && default_is_none;
    let nullable = t.nullable || secret_none;
    let has_default = info.default.is_some() && (nullable || !default_is_none);
    let is_union = matches!(t.kind, InputKind::Union(_));
    let required = !has_default && (is_union || t.is_required_scalar() || t.is_required_array());
    if has_default && let Some(default) = &info.default {
        prop.set("default", default.to_json());
    }
    if nullable {
        prop.set("nullable", Json::Bool(true));
    }
    if let Some(d) = &info.description {
        prop.set("description", s(d));
    }
    if let Some(ge) = info.ge {
        prop.set("minimum", Json::Float(ge));
    }
    if let Some(le) = info.le {
        prop.set("maximum", Json::Float(le));
    }
    if let Some(n) = info.min_length {
        prop.set("minLength", Json::Int(n.min(i64::MAX as u64) as i64));
    }
    if let Some(n) = info.max_length {
        prop.set("maxLength", Json::Int(n.min(i64::MAX as u64) as i64));
    }
    if let Some(r) = &info.regex {
        prop.set("pattern", s(r));
    }
    if info.deprecated == Some(true) {
        prop.set("deprecated", Json::Bool(true));
    }
    if let Some(a) = &info.accept {
        prop.set("x-cog-accept", s(a));
    }
    required
}

/// Drops `title` from every object that also has `$ref`.
pub fn remove_title_next_to_ref(value: &mut Json) {
    match value {
        Json::Obj(obj) => {
            if obj.contains("$ref") {
                obj.remove("title");
            }
            for (_, child) in obj.entries_mut() {
                remove_title_next_to_ref(child);
            }
        }
        Json::Arr(items) => items.iter_mut().for_each(remove_title_next_to_ref),
        _ => {}
    }
}

/// Collapses `anyOf: [X, {"type":"null"}]` into X + `nullable: true`.
pub fn fix_nullable_any_of(value: &mut Json) {
    match value {
        Json::Obj(obj) => {
            for (_, child) in obj.entries_mut() {
                fix_nullable_any_of(child);
            }
            let Some(Json::Arr(variants)) = obj.get("anyOf") else {
                return;
            };
            if variants.len() != 2 {
                return;
            }
            let mut non_null = None;
            let mut has_null = false;
            for variant in variants {
                let Json::Obj(v) = variant else {
                    return;
                };
                if v.get("type") == Some(&s("null")) {
                    has_null = true;
                } else {
                    non_null = Some(v.clone());
                }
            }
            if let (true, Some(inner)) = (has_null, non_null) {
                obj.remove("anyOf");
                for (k, v) in inner.entries() {
                    obj.set(k, v.clone());
                }
                obj.set("nullable", Json::Bool(true));
            }
        }
        Json::Arr(items) => items.iter_mut().for_each(fix_nullable_any_of),
        _ => {}
    }
}

/// Adds train paths and components absent from the predict document.
pub fn merge(predict: &mut Json, train: &Json) {
    for section in [&["paths"][..], &["components", "schemas"][..]] {
        let (Some(Json::Obj(dst)), Some(Json::Obj(src))) =
            (lookup_mut(predict, section), lookup(train, section))
        else {
            continue;
        };
        for (k, v) in src.entries() {
            if !dst.contains(k) {
                dst.set(k, v.clone());
            }
        }
    }
}

fn lookup<'a>(value: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, key| v.as_obj()?.get(key))
}

fn lookup_mut<'a>(value: &'a mut Json, path: &[&str]) -> Option<&'a mut Json> {
    path.iter()
        .try_fold(value, |v, key| v.as_obj_mut()?.get_mut(key))
}

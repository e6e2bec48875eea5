//! The subset of OpenAPI 3.0 validation cog's build applies (kin-openapi
//! `doc.Validate`): document shape, and every `default` checked against the
//! schema it sits in (so `default=1, ge=2` fails).

use super::gojson::{Json, Obj, go_float};

/// A validation failure: where (JSON path) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Human path, e.g. `components.schemas.Input.properties.num`.
    pub path: String,
    /// kin-openapi style message.
    pub message: String,
}

/// Validates a whole document.
pub fn validate_document(doc: &Json) -> Result<(), Invalid> {
    let root = doc
        .as_obj()
        .ok_or_else(|| invalid("", "the document must be a JSON object"))?;
    match root.get("openapi") {
        Some(Json::Str(v)) if !v.is_empty() => {}
        _ => {
            return Err(invalid(
                "openapi",
                "value of openapi must be a non-empty string",
            ));
        }
    }
    let info = root.get("info").and_then(Json::as_obj);
    let info = info.ok_or_else(|| invalid("info", "invalid info: must be an object"))?;
    for key in ["title", "version"] {
        match info.get(key) {
            Some(Json::Str(v)) if !v.is_empty() => {}
            _ => {
                return Err(invalid(
                    "info",
                    &format!("invalid info: value of {key} must be a non-empty string"),
                ));
            }
        }
    }
    if !matches!(root.get("paths"), Some(Json::Obj(_))) {
        return Err(invalid("paths", "invalid paths: must be an object"));
    }
    let empty = Obj::map();
    let schemas = root
        .get("components")
        .and_then(Json::as_obj)
        .and_then(|c| c.get("schemas"))
        .and_then(Json::as_obj)
        .unwrap_or(&empty);
    for (name, schema) in schemas.entries() {
        let path = format!("components.schemas.{name}");
        check_schema(schema, schemas, &path, 0).map_err(|mut e| {
            e.message = format!("invalid components: schema \"{name}\": {}", e.message);
            e
        })?;
    }
    Ok(())
}

fn invalid(path: &str, message: &str) -> Invalid {
    Invalid {
        path: path.to_string(),
        message: message.to_string(),
    }
}

const MAX_SCHEMA_DEPTH: usize = 128;

fn check_schema(schema: &Json, components: &Obj, path: &str, depth: usize) -> Result<(), Invalid> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(invalid(path, "schema is nested too deeply"));
    }
    let Some(obj) = schema.as_obj() else {
        return Ok(());
    };
    let is_string = obj.get("type") == Some(&Json::str("string"));
    if let Some(Json::Str(pattern)) = obj.get("pattern")
        && is_string
        && regex::Regex::new(pattern).is_err()
    {
        return Err(invalid(
            path,
            &format!("cannot compile pattern \"{pattern}\" (regular expression)"),
        ));
    }
    if let Some(default) = obj.get("default") {
        check_value(default, schema, components, 0)
            .map_err(|m| invalid(path, &format!("invalid default: {m}")))?;
    }
    for (key, child) in obj.entries() {
        match (key.as_str(), child) {
            ("properties", Json::Obj(props)) => {
                for (name, prop) in props.entries() {
                    check_schema(
                        prop,
                        components,
                        &format!("{path}.properties.{name}"),
                        depth + 1,
                    )?;
                }
            }
            ("items" | "additionalProperties", _) => {
                check_schema(child, components, &format!("{path}.{key}"), depth + 1)?
            }
            ("allOf" | "anyOf" | "oneOf", Json::Arr(items)) => {
                for item in items {
                    check_schema(item, components, &format!("{path}.{key}"), depth + 1)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn resolve<'a>(schema: &'a Json, components: &'a Obj) -> Result<&'a Json, String> {
    let Some(Json::Str(r)) = schema.as_obj().and_then(|o| o.get("$ref")) else {
        return Ok(schema);
    };
    let name = r
        .strip_prefix("#/components/schemas/")
        .ok_or_else(|| format!("unsupported reference \"{r}\""))?;
    components
        .get(name)
        .ok_or_else(|| format!("unresolved reference \"{r}\""))
}

fn as_number(value: &Json) -> Option<f64> {
    match value {
        Json::Int(i) => Some(*i as f64),
        Json::Float(f) => Some(*f),
        _ => None,
    }
}

/// Checks `value` against `schema` (the parts cog's schemas use).
pub fn check_value(
    value: &Json,
    schema: &Json,
    components: &Obj,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err("schema is nested too deeply".to_string());
    }
    let schema = resolve(schema, components)?;
    let Some(s) = schema.as_obj() else {
        return Ok(());
    };
    if matches!(value, Json::Null) && s.get("nullable") == Some(&Json::Bool(true)) {
        return Ok(());
    }
    if let Some(Json::Arr(all)) = s.get("allOf") {
        for sub in all {
            check_value(value, sub, components, depth + 1)?;
        }
    }
    if let Some(Json::Arr(any)) = s.get("anyOf")
        && !any
            .iter()
            .any(|sub| check_value(value, sub, components, depth + 1).is_ok())
    {
        return Err("doesn't match any schema from \"anyOf\"".to_string());
    }
    if matches!(value, Json::Null) {
        return match s.get("nullable") {
            Some(Json::Bool(true)) => Ok(()),
            _ if s.get("type").is_none() && !s.contains("enum") => Ok(()),
            _ => Err("Value is not nullable".to_string()),
        };
    }
    if let Some(Json::Arr(allowed)) = s.get("enum")
        && !allowed.iter().any(|a| same_value(a, value))
    {
        let listed = Json::Arr(allowed.clone()).to_go_compact();
        return Err(format!("value is not one of the allowed values {listed}"));
    }
    check_type(value, s)?;
    check_bounds(value, s)?;
    check_children(value, s, components, depth)
}

fn same_value(a: &Json, b: &Json) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn check_type(value: &Json, s: &Obj) -> Result<(), String> {
    let Some(Json::Str(kind)) = s.get("type") else {
        return Ok(());
    };
    let ok = match kind.as_str() {
        "integer" => match value {
            Json::Int(_) => true,
            Json::Float(f) => f.fract() == 0.0,
            _ => false,
        },
        "number" => as_number(value).is_some(),
        "string" => matches!(value, Json::Str(_)),
        "boolean" => matches!(value, Json::Bool(_)),
        "array" => matches!(value, Json::Arr(_)),
        "object" => matches!(value, Json::Obj(_)),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let article = if kind == "integer" || kind == "array" || kind == "object" {
        "an"
    } else {
        "a"
    };
    Err(format!("value must be {article} {kind}"))
}

fn check_bounds(value: &Json, s: &Obj) -> Result<(), String> {
    if let Some(n) = as_number(value) {
        if let Some(min) = s.get("minimum").and_then(as_number)
            && n < min
        {
            return Err(format!(
                "number must be at least {} (minimum)",
                go_float(min)
            ));
        }
        if let Some(max) = s.get("maximum").and_then(as_number)
            && n > max
        {
            return Err(format!(
                "number must be at most {} (maximum)",
                go_float(max)
            ));
        }
    }
    if let Json::Str(text) = value {
        let length = text.chars().count() as f64;
        if let Some(min) = s.get("minLength").and_then(as_number)
            && length < min
        {
            return Err(format!(
                "minimum string length is {} (minLength)",
                go_float(min)
            ));
        }
        if let Some(max) = s.get("maxLength").and_then(as_number)
            && length > max
        {
            return Err(format!(
                "maximum string length is {} (maxLength)",
                go_float(max)
            ));
        }
        if let Some(Json::Str(pattern)) = s.get("pattern") {
            let matches = regex::Regex::new(pattern).map(|re| re.is_match(text));
            if matches != Ok(true) {
                return Err(format!(
                    "string doesn't match the regular expression \"{pattern}\" (pattern)"
                ));
            }
        }
    }
    Ok(())
}

fn check_children(value: &Json, s: &Obj, components: &Obj, depth: usize) -> Result<(), String> {
    match value {
        Json::Arr(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, item_schema, components, depth + 1)
                        .map_err(|e| format!("item {i}: {e}"))?;
                }
            }
        }
        Json::Obj(obj) => {
            if let Some(Json::Obj(props)) = s.get("properties") {
                for (k, v) in obj.entries() {
                    if let Some(prop_schema) = props.get(k) {
                        check_value(v, prop_schema, components, depth + 1)
                            .map_err(|e| format!("property \"{k}\": {e}"))?;
                    }
                }
            }
            if let Some(Json::Arr(required)) = s.get("required") {
                for r in required {
                    if let Json::Str(name) = r
                        && !obj.contains(name)
                    {
                        return Err(format!("property \"{name}\" is missing"));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

//! HubSpot's published OpenAPI specs (`shared/specs/hubspot/*.json`) as a yardstick for the
//! connector's requests and the sandbox's answers: loading a spec file, and enough of JSON Schema
//! for HubSpot's schemas ($ref, required, properties, additionalProperties, items, type, enum).

use std::path::PathBuf;

use serde_json::{Value, json};

/// Where the specs live: `shared/specs/hubspot/` beside the repository.
pub fn path(file: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/specs/hubspot")
        .join(file)
}

/// One spec file, parsed; the error names the file and why it could not be used.
pub fn load(file: &str) -> Result<Value, String> {
    let path = path(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "HubSpot's OpenAPI spec {} could not be read: {e}",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// Where `value` departs from the spec's schema `name`, one line per problem. With `strict`,
/// object keys the spec lacks are problems too (requests must send nothing undocumented); answers
/// are checked leniently because HubSpot's own bodies carry documented extras the spec omits.
pub fn schema_problems(spec: &Value, name: &str, value: &Value, strict: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let schema = json!({"$ref": format!("#/components/schemas/{name}")});
    conforms(spec, &schema, value, name, strict, &mut problems);
    problems
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            let found = &spec["components"]["schemas"][name];
            if found.is_null() {
                return Err(format!("the spec has no schema {name}"));
            }
            resolve(spec, found)
        }
        None => Ok(schema),
    }
}

fn conforms(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
    problems: &mut Vec<String>,
) {
    let schema = match resolve(spec, schema) {
        Ok(s) => s,
        Err(e) => return problems.push(format!("{at}: {e}")),
    };
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{at}: {value} not in {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else {
                return problems.push(format!("{at}: expected object, got {value}"));
            };
            for req in schema["required"].as_array().into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap_or_default()) {
                    problems.push(format!("{at}: missing required {req}"));
                }
            }
            for (k, v) in obj {
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    conforms(spec, s, v, &format!("{at}.{k}"), strict, problems);
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    if !v.is_null() {
                        conforms(spec, s, v, &format!("{at}.{k}"), strict, problems);
                    }
                } else if strict {
                    problems.push(format!("{at}: key {k} is not in the spec"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    conforms(
                        spec,
                        &schema["items"],
                        item,
                        &format!("{at}[{i}]"),
                        strict,
                        problems,
                    );
                }
            }
            None => problems.push(format!("{at}: expected array")),
        },
        Some("string") if !value.is_string() => {
            problems.push(format!("{at}: expected string, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => problems.push(format!("{at}: expected boolean")),
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            problems.push(format!("{at}: expected integer"))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_the_place_and_strictness_decides_about_extra_keys() {
        let spec = json!({"components": {"schemas": {
            "In": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}}},
            "Tag": {"type": "object", "properties": {"n": {"type": "integer"}}}}}});
        let good = json!({"id": "1", "kind": "a", "tags": [{"n": 1}]});
        assert!(schema_problems(&spec, "In", &good, true).is_empty());
        let bad = json!({"kind": "c", "tags": [{"n": "x"}], "extra": 1});
        let strict = schema_problems(&spec, "In", &bad, true);
        assert!(
            strict.contains(&"In: missing required \"id\"".to_owned()),
            "{strict:?}"
        );
        assert!(
            strict
                .iter()
                .any(|p| p.starts_with("In.kind: \"c\" not in"))
        );
        assert!(strict.contains(&"In.tags[0].n: expected integer".to_owned()));
        assert!(strict.contains(&"In: key extra is not in the spec".to_owned()));
        let lenient = schema_problems(&spec, "In", &bad, false);
        assert_eq!(lenient.len(), strict.len() - 1);
        assert_eq!(
            schema_problems(&spec, "Missing", &good, false),
            ["Missing: the spec has no schema Missing"]
        );
    }
}

//! The JSON Schema of `deployment.yml`, generated from the Rust types in
//! [`super::schema`] so the two cannot drift (a test compares the committed
//! `deployment.schema.json` files with this output).

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::schema::Settings;

/// The schema of one environment's merged settings: every required key.
pub fn settings_schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let schema = generator.into_root_schema_for::<Settings>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// The same shape with nothing required: what an `environments.<env>`
/// section may hold.
pub fn partial_schema() -> Value {
    let mut schema = settings_schema();
    strip_required(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    schema
}

/// The schema of the file as written: the shared settings plus
/// `environments`, a map of partial settings. Published for editors.
pub fn file_schema() -> Value {
    let mut schema = settings_schema();
    let partial = partial_schema();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            json!("Slipway deployment configuration (deployment.yml)"),
        );
        obj.insert(
            "description".into(),
            json!("Shared settings at the top level; `environments.<name>` overrides them per environment. See https://github.com/slipway-dev/slipway#configuration-reference"),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "environments".into(),
                json!({
                    "description": "Per-environment overrides (development, staging, production, ...), merged over the shared settings.",
                    "type": "object",
                    "additionalProperties": partial,
                }),
            );
        }
    }
    schema
}

/// The committed text of `deployment.schema.json`.
pub fn file_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&file_schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn strip_required(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("required");
            map.values_mut().for_each(strip_required);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_required),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_inline_and_strict() {
        let s = settings_schema();
        let text = s.to_string();
        assert!(
            !text.contains("$ref"),
            "subschemas must be inlined for error mapping"
        );
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["app"]["additionalProperties"], json!(false));
        assert!(s["required"].as_array().unwrap().contains(&json!("app")));
        assert!(!partial_schema().to_string().contains("\"required\""));
        assert!(file_schema()["properties"]["environments"].is_object());
    }
}

//! The schemas the grammar plugin is held to, and a validator for the JSON Schema subset they
//! use (types, enum, bounds, lengths, items, properties, required, additionalProperties): shared
//! by the grammar test and its benchmark run (benchmarks/grammar.sh).
#![allow(dead_code)]

use serde_json::{json, Value};

/// Five schemas: required fields with an enum and a bounded integer, a top-level enum, an array
/// of bounded integers, a nested object, and nullable / boolean fields.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "npc_action",
            json!({"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 16},
                "action": {"enum": ["attack", "flee", "talk", "trade"]},
                "hp": {"type": "integer", "minimum": 0, "maximum": 100}},
              "required": ["name", "action", "hp"], "additionalProperties": false}),
        ),
        (
            "direction",
            json!({"enum": ["north", "south", "east", "west"]}),
        ),
        (
            "dice",
            json!({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 6},
                   "minItems": 1, "maxItems": 4}),
        ),
        (
            "nested",
            json!({"type": "object", "properties": {
                "pos": {"type": "object", "properties": {
                    "x": {"type": "integer", "minimum": -50, "maximum": 50},
                    "y": {"type": "integer", "minimum": -50, "maximum": 50}},
                  "required": ["x", "y"], "additionalProperties": false},
                "label": {"type": "string", "maxLength": 12}},
              "required": ["pos", "label"], "additionalProperties": false}),
        ),
        (
            "nullable",
            json!({"type": "object", "properties": {
                "target": {"type": ["string", "null"], "maxLength": 10},
                "hostile": {"type": "boolean"}},
              "required": ["target", "hostile"], "additionalProperties": false}),
        ),
    ]
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Where `value` breaks `schema`, or `None` when it matches.
pub fn violation(schema: &Value, value: &Value, at: &str) -> Option<String> {
    let fail = |what: &str| Some(format!("{at}: {what} ({value})"));
    match &schema["type"] {
        Value::String(t) if !type_matches(t, value) => return fail(&format!("not {t}")),
        Value::Array(ts)
            if !ts
                .iter()
                .any(|t| type_matches(t.as_str().unwrap_or(""), value)) =>
        {
            return fail("none of the types")
        }
        _ => {}
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            return fail("not in the enum");
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            return fail("below minimum");
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            return fail("above maximum");
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|m| chars > m) {
            return fail("too long");
        }
        if schema["minLength"].as_u64().is_some_and(|m| chars < m) {
            return fail("too short");
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|m| n < m)
            || schema["maxItems"].as_u64().is_some_and(|m| n > m)
        {
            return fail("item count out of bounds");
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = violation(&schema["items"], item, &format!("{at}[{i}]")) {
                return Some(v);
            }
        }
    }
    if let Some(fields) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(key.as_str().unwrap_or("")) {
                return fail(&format!("missing required {key}"));
            }
        }
        for (key, field) in fields {
            match schema["properties"].get(key) {
                Some(sub) => {
                    if let Some(v) = violation(sub, field, &format!("{at}.{key}")) {
                        return Some(v);
                    }
                }
                None if schema["additionalProperties"] == json!(false) => {
                    return fail(&format!("unexpected property {key}"))
                }
                None => {}
            }
        }
    }
    None
}

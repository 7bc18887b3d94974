//! # json-transform — a WASM handler
//!
//! Reads the request body as a JSON object, reshapes it and answers with
//! the result (`200`, `application/json`):
//!
//! 1. `rename`: `{old: new}` renames top-level fields;
//! 2. `drop`: removes top-level fields;
//! 3. `set`: `{field: template}` sets fields to strings, where `{key}` is
//!    replaced by request metadata (e.g. `{ab.variant}`, `{jwt.sub}`),
//!    `{request.id}`, `{request.method}` or `{request.path}`; a template
//!    whose metadata is missing leaves the field unset;
//! 4. `wrap`: when given, the result is nested under this key.
//!
//! ```yaml
//! plugins:
//!   reshape:
//!     kind: wasm
//!     path: wasm/json_transform.wasm
//!     config:
//!       rename: { userName: user }
//!       drop: [password]
//!       set: { variant: "{ab.variant}", request: "{request.id}" }
//!       wrap: data
//! ```
//!
//! A body that is not a JSON object gets a `400` in the host's error shape.

use std::{cell::RefCell, collections::BTreeMap};

use covet_guest::{Descriptor, Flow, Guest, OutgoingResponse, Phases, Request, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    rename: BTreeMap<String, String>,
    drop: Vec<String>,
    set: BTreeMap<String, String>,
    wrap: Option<String>,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings::default());
}

struct JsonTransform;

impl Guest for JsonTransform {
    fn describe() -> Descriptor {
        covet_guest::descriptor!(Phases::HANDLE)
    }

    fn init(config: String, _instance: String) -> Result<(), String> {
        let json = if config.trim() == "null" { "{}" } else { &config };
        let settings: Settings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for template in settings.set.values() {
            check_template(template)?;
        }
        SETTINGS.set(settings);
        Ok(())
    }

    fn on_request(_req: &Request) -> Flow {
        Flow::Continue
    }

    fn handle(req: &Request) -> Response {
        let object = match serde_json::from_slice::<Value>(&req.body()) {
            Ok(Value::Object(object)) => object,
            Ok(_) | Err(_) => {
                let details = json!({ "expected": "a JSON object" });
                return Response::error(400, "BAD_REQUEST", "the body is not a JSON object", details, &req.request_id());
            }
        };
        let result = SETTINGS.with_borrow(|s| transform(object, s, req));
        Response::json(200, &result)
    }

    fn on_response(_req: &Request, _resp: &OutgoingResponse) {}
}

fn transform(mut object: Map<String, Value>, s: &Settings, req: &Request) -> Value {
    for (old, new) in &s.rename {
        if let Some(value) = object.remove(old) {
            object.insert(new.clone(), value);
        }
    }
    for field in &s.drop {
        object.remove(field);
    }
    for (field, template) in &s.set {
        if let Some(text) = render(template, req) {
            object.insert(field.clone(), Value::String(text));
        }
    }
    match &s.wrap {
        Some(key) => json!({ key: object }),
        None => Value::Object(object),
    }
}

/// Fills `{key}` placeholders; `None` when a metadata key is missing.
fn render(template: &str, req: &Request) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let value = match &rest[start + 1..end] {
            "request.id" => req.request_id(),
            "request.method" => req.method(),
            "request.path" => req.path(),
            key => req.metadata(key)?,
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn check_template(template: &str) -> Result<(), String> {
    let opens = template.matches('{').count();
    match opens == template.matches('}').count() {
        true => Ok(()),
        false => Err(format!("unbalanced braces in template {template:?}")),
    }
}

covet_guest::export!(JsonTransform);

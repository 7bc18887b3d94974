//! The manifest's JSON Schema (`covet schema`), derived from the serde types
//! in `raw` so the two cannot drift. The types here exist only to describe
//! values that `raw` keeps as spanned strings (kinds, methods, plugin names).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::raw::{PluginEntries, RawManifest, RawPlugin};

/// The JSON Schema of the manifest, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RawManifest);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// The plugin runtimes this build accepts.
#[derive(JsonSchema)]
#[schemars(rename = "PluginKind", rename_all = "lowercase")]
#[allow(dead_code)] // only describes the accepted values
pub enum KindSchema {
    /// A Rust cdylib built against covet-plugin-api.
    Native,
    /// A WebAssembly component (covet:plugin@0.1.0, or wasi:http/incoming-handler as a handler).
    Wasm,
    /// Python code run by the embedded interpreter (`app:`, `asgi:` or `filter:`).
    Python,
}

/// The methods a route may name.
#[derive(JsonSchema)]
#[schemars(rename = "Method", rename_all = "UPPERCASE")]
#[allow(dead_code, clippy::upper_case_acronyms)] // only describes the accepted values
pub enum MethodSchema {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Trace,
    Connect,
}

impl JsonSchema for PluginEntries {
    fn schema_name() -> Cow<'static, str> {
        "Plugins".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let plugin = generator.subschema_for::<RawPlugin>();
        json_schema!({
            "type": "object",
            "propertyNames": { "pattern": "^[a-z0-9][a-z0-9_-]*$" },
            "additionalProperties": plugin
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_strict_and_documents_the_keys() {
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).expect("valid JSON");
        assert_eq!(schema["title"], "covet manifest");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], serde_json::json!(["listen"]));
        let defs = &schema["$defs"];
        assert_eq!(defs["Plugin"]["additionalProperties"], false);
        assert_eq!(defs["PluginKind"]["oneOf"][0]["const"], "native");
        assert_eq!(defs["PluginKind"]["oneOf"][1]["const"], "wasm");
        assert!(defs["WasmCapabilities"]["properties"]["outbound_http"].is_object());
        assert!(defs["WasmCapabilities"]["properties"]["upstreams"].is_object());
        assert!(schema["properties"]["upstreams"].to_string().contains("Upstreams"));
        assert_eq!(defs["Upstream"]["additionalProperties"], false);
        assert_eq!(defs["Upstream"]["required"], serde_json::json!(["endpoints"]));
        assert_eq!(defs["UpstreamRetries"]["additionalProperties"], false);
        assert!(defs["UpstreamEndpointEntry"]["anyOf"].is_array());
        assert_eq!(defs["Telemetry"]["additionalProperties"], false);
        assert_eq!(defs["TelemetryOtlp"]["required"], serde_json::json!(["endpoint"]));
        assert_eq!(defs["TelemetryTracing"]["properties"]["sample_ratio"]["maximum"], 1.0);
        assert!(defs["Route"]["properties"]["trace_sample_ratio"].is_object());
        assert!(defs["Method"]["enum"].to_string().contains("PATCH"));
        assert!(
            defs["Route"]["properties"]["methods"]
                .to_string()
                .contains("Method")
        );
        assert!(
            defs["Limits"]["properties"]["max_body"]
                .to_string()
                .contains("ByteSize")
        );
    }
}

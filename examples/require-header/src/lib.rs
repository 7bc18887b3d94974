//! Example native plugin, the one the README walks through: a filter that
//! answers 403 unless the request carries a configured header, and tells
//! later plugins which header it checked.
//!
//! ```yaml
//! plugins:
//!   require-key:
//!     kind: native
//!     path: libs/librequire_header.so
//!     config: { header: x-api-key }
//! routes:
//!   - path: /private/{*rest}
//!     filters: [require-key]
//!     handler: app
//! ```
//!
//! Build: `cargo build --release -p require-header` → `target/release/librequire_header.so`.

use covet_plugin_api::{Config, Flow, JsonValue, Phases, Plugin, Request, Response, export_plugin, http_syntax};
use serde::Deserialize;

/// The plugin: the lower-cased name of the header every request must carry.
pub struct RequireHeader {
    header: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    header: String,
}

impl Plugin for RequireHeader {
    const PHASES: Phases = Phases::ON_REQUEST;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        Ok(RequireHeader { header: http_syntax::header_name(&settings.header)? })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if req.header(&self.header).is_some() {
            req.set_metadata("require_header.checked", &self.header);
            return Flow::Continue;
        }
        let message = format!("this route needs the `{}` header", self.header);
        Flow::Respond(Response::error(403, "FORBIDDEN", &message, JsonValue::Null, req.request_id()))
    }
}

export_plugin!(RequireHeader);

#[cfg(test)]
mod tests {
    use covet_plugin_api::testing::TestRequest;

    use super::*;

    fn plugin() -> RequireHeader {
        RequireHeader::init(Config::from_json(r#"{"header": "X-Api-Key"}"#)).unwrap()
    }

    #[test]
    fn lets_requests_with_the_header_through_and_tags_them() {
        let mut req = TestRequest::get("/private/a").header("x-api-key", "k");
        assert!(matches!(plugin().on_request(&mut req.view()), Flow::Continue));
        assert_eq!(req.get_metadata("require_header.checked"), Some("x-api-key"));
    }

    #[test]
    fn answers_403_with_the_structured_body_without_it() {
        let mut req = TestRequest::get("/private/a");
        let Flow::Respond(resp) = plugin().on_request(&mut req.view()) else { panic!("let through") };
        assert_eq!(resp.status, 403);
        assert!(String::from_utf8_lossy(&resp.body).contains("x-api-key"));
    }

    #[test]
    fn refuses_a_bad_header_name_at_init() {
        let err = RequireHeader::init(Config::from_json(r#"{"header": "x key"}"#)).err().unwrap();
        assert!(err.contains("a space"), "{err}");
    }
}

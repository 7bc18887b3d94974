//! The example of `docs/wasm.md`: the WASM twin of the native
//! `examples/require-header`. Answers 403 unless the request carries the
//! configured header; sets `require_header.checked` for later plugins.

use std::cell::RefCell;

use covet_guest::{Descriptor, Flow, Guest, OutgoingResponse, Phases, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    header: String,
}

thread_local! {
    // Set by `init`, which runs in every new instance before its first phase.
    static HEADER: RefCell<String> = const { RefCell::new(String::new()) };
}

struct RequireHeader;

impl Guest for RequireHeader {
    fn describe() -> Descriptor {
        covet_guest::descriptor!(Phases::ON_REQUEST) // the host calls no other phase
    }

    fn init(config: String, _instance: String) -> Result<(), String> {
        let settings: Settings = serde_json::from_str(&config).map_err(|e| e.to_string())?; // an Err refuses the load
        HEADER.set(settings.header.to_ascii_lowercase());
        Ok(())
    }

    fn on_request(req: &Request) -> Flow {
        let header = HEADER.with_borrow(Clone::clone);
        if req.header(&header).is_some() {
            req.set_metadata("require_header.checked", &header); // later plugins can read it
            return Flow::Continue;
        }
        let message = format!("this route needs the `{header}` header");
        Flow::Respond(Response::error(403, "FORBIDDEN", &message, serde_json::Value::Null, &req.request_id()))
    }

    fn handle(_req: &Request) -> Response {
        Response::new(501) // not declared in `describe`: never called
    }

    fn on_response(_req: &Request, _resp: &OutgoingResponse) {}
}

covet_guest::export!(RequireHeader);

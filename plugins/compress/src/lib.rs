//! # covet-compress
//!
//! A covet filter compressing responses with gzip, brotli or zstd, chosen
//! by the client's `Accept-Encoding` (q-values honoured) and the server's
//! preference order. Responses are compressed **as they stream**: the body
//! stream is wrapped, never buffered whole. Optionally it decompresses
//! request bodies (`content-encoding: gzip|br|zstd`) with a size limit.
//! See `docs/compress.md` for the manifest, the rules and the benchmark.
//!
//! ```yaml
//! plugins:
//!   compress:
//!     kind: native
//!     path: libcovet_compress.so
//!     config:
//!       encodings: [br, zstd, gzip]      # server preference (default)
//!       min_size: 1024                   # known-length bodies below it are left alone
//!       types: [text/*, application/json, +json, +xml]
//!       levels: { gzip: 6, br: 4, zstd: 3 }
//!       decompress_requests: false
//!       max_decompressed_size: 10485760  # 413 past it
//! ```
#![deny(missing_docs)]

mod codec;
mod negotiate;
mod settings;
mod stream;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use covet_plugin_api::{BodyMode, BodyStream, Config, Flow, JsonValue, Phases, Plugin, Request, Response, ResponseMut, export_plugin};

pub use codec::{Decoder, Encoder, Levels, decode_all};
pub use negotiate::{Coding, TypePattern, negotiate, no_transform, type_matches, weaken_etag};
pub use settings::Settings;
use settings::Checked;
pub use stream::{Compressing, Decoding};

/// Why the plugin could not do something.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The config block is invalid.
    #[error("invalid compress config: {0}")]
    Config(String),
    /// A codec failed.
    #[error("codec error: {0}")]
    Io(#[from] std::io::Error),
}

/// The metadata key linking a request to its decompression stream's flag.
const DECODING_KEY: &str = "compress.decoding";
/// Flags kept for on_response before the unclaimed ones (requests whose
/// client went away) are dropped.
const MAX_WATCHED: usize = 4096;

/// The plugin: checked settings and the flags of request bodies being
/// decompressed as they stream.
pub struct Compress {
    settings: Checked,
    next_token: AtomicU64,
    watched: Mutex<HashMap<u64, Arc<AtomicBool>>>,
}

impl Plugin for Compress {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);
    // Never forces a route to buffer; takes the request body only to decompress it.
    const BODY: BodyMode = BodyMode::Stream;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        Compress::new(settings).map_err(|e| e.to_string())
    }

    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if !self.settings.decompress_requests {
            return Flow::Continue;
        }
        match req.header("content-encoding").map(str::trim) {
            None => Flow::Continue,
            Some(c) if c.is_empty() || c.eq_ignore_ascii_case("identity") => {
                req.remove_header("content-encoding");
                Flow::Continue
            }
            Some(c) => match Coding::from_token(c) {
                Some(coding) => self.decode_request(req, coding),
                None => Flow::Respond(unsupported_encoding(c, req.request_id())),
            },
        }
    }

    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        if self.request_went_over(req) {
            too_large_response(resp, self.settings.max_decompressed_size, req.request_id());
            return;
        }
        if !self.eligible(req, resp) {
            return;
        }
        add_vary(resp);
        let Some(coding) = req.header("accept-encoding").and_then(|ae| negotiate(ae, &self.settings.encodings)) else {
            return;
        };
        self.compress(resp, coding);
    }
}

impl Compress {
    /// An instance from settings (checked here).
    pub fn new(settings: Settings) -> Result<Compress, CompressError> {
        Ok(Compress { settings: settings.check()?, next_token: AtomicU64::new(0), watched: Mutex::default() })
    }

    /// Whether the response may be compressed at all (whatever the client accepts).
    fn eligible(&self, req: &Request<'_>, resp: &ResponseMut<'_>) -> bool {
        let status = resp.status();
        if req.method() == "HEAD" || !(200..=599).contains(&status) || matches!(status, 204 | 206 | 304) {
            return false;
        }
        if resp.header("content-encoding").is_some() || resp.header("content-range").is_some() {
            return false;
        }
        if resp.header("cache-control").is_some_and(no_transform) {
            return false;
        }
        resp.header("content-type").is_some_and(|t| type_matches(t, &self.settings.types))
    }

    /// Wraps the body in a compressing stream and fixes the headers; a body
    /// of known length under `min_size` is put back as it was.
    fn compress(&self, resp: &mut ResponseMut<'_>, coding: Coding) {
        let min = self.settings.min_size;
        let declared = resp.header("content-length").and_then(|n| n.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n < min) {
            return;
        }
        let body = resp.take_body(); // drops content-length
        let known = declared.or(body.size_hint());
        if known.is_some_and(|n| n < min) {
            put_back(resp, body, declared);
            return;
        }
        let encoder = match Encoder::new(coding, &self.settings.levels, known) {
            Ok(encoder) => encoder,
            Err(_) => return put_back(resp, body, declared),
        };
        resp.set_body_stream(Compressing::body(body, encoder));
        let _ = resp.set_header("content-encoding", coding.token());
        if let Some(weak) = resp.header("etag").and_then(weaken_etag) {
            let _ = resp.set_header("etag", &weak);
        }
    }

    fn decode_request(&self, req: &mut Request<'_>, coding: Coding) -> Flow {
        let limit = self.settings.max_decompressed_size;
        if !req.body().is_empty() {
            // A buffered body: decompress it now, so the 413 comes before the handler.
            return match decode_all(coding, req.body(), limit) {
                Ok(plain) => {
                    let len = plain.len().to_string();
                    req.set_body(BodyStream::from_bytes(plain));
                    req.remove_header("content-encoding");
                    let _ = req.set_header("content-length", &len);
                    Flow::Continue
                }
                Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                    Flow::Respond(too_large(limit, req.request_id()))
                }
                Err(e) => Flow::Respond(bad_body(coding, &e, req.request_id())),
            };
        }
        let decoder = match Decoder::new(coding, limit) {
            Ok(decoder) => decoder,
            Err(e) => return Flow::Respond(bad_body(coding, &e, req.request_id())),
        };
        let over = Arc::new(AtomicBool::new(false));
        let body = req.take_body();
        req.set_body(Decoding::body(body, decoder, over.clone()));
        req.remove_header("content-encoding");
        req.remove_header("content-length");
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.watch(token, over);
        req.set_metadata(DECODING_KEY, &token.to_string());
        Flow::Continue
    }

    fn watch(&self, token: u64, over: Arc<AtomicBool>) {
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if watched.len() >= MAX_WATCHED {
            // Requests that ended without on_response (the client went away).
            watched.retain(|_, flag| Arc::strong_count(flag) > 1);
        }
        watched.insert(token, over);
    }

    /// Whether this request's streamed body went over the decompression limit.
    fn request_went_over(&self, req: &Request<'_>) -> bool {
        let Some(token) = req.metadata(DECODING_KEY).and_then(|t| t.parse::<u64>().ok()) else { return false };
        let flag = self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
        flag.is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// Restores a body left uncompressed (and the content-length it came with).
fn put_back(resp: &mut ResponseMut<'_>, body: BodyStream, declared: Option<u64>) {
    resp.set_body_stream(body);
    if let Some(n) = declared {
        let _ = resp.set_header("content-length", &n.to_string());
    }
}

/// Adds `accept-encoding` to `Vary` unless it is there already.
fn add_vary(resp: &mut ResponseMut<'_>) {
    if !resp.header("vary").is_some_and(negotiate::vary_has_accept_encoding) {
        let _ = resp.append_header("vary", "accept-encoding");
    }
}

fn too_large(limit: u64, request_id: &str) -> Response {
    let details = serde_json::json!({ "max_decompressed_size": limit });
    let message = format!("the request body decompresses to more than {limit} bytes");
    Response::error(413, "PAYLOAD_TOO_LARGE", &message, details, request_id)
}

fn too_large_response(resp: &mut ResponseMut<'_>, limit: u64, request_id: &str) {
    let error = too_large(limit, request_id);
    for name in ["content-encoding", "etag", "vary", "content-type"] {
        resp.remove_header(name);
    }
    let _ = resp.set_status(413);
    let _ = resp.set_header("content-type", "application/json");
    resp.set_body(error.body.to_vec());
}

fn unsupported_encoding(coding: &str, request_id: &str) -> Response {
    let details = serde_json::json!({ "content_encoding": coding, "supported": ["gzip", "br", "zstd"] });
    Response::error(415, "UNSUPPORTED_CONTENT_ENCODING", "the request's content-encoding is not supported", details, request_id)
        .with_header("accept-encoding", "gzip, br, zstd")
}

fn bad_body(coding: Coding, e: &std::io::Error, request_id: &str) -> Response {
    let details: JsonValue = serde_json::json!({ "content_encoding": coding.token(), "reason": e.to_string() });
    Response::error(400, "BAD_REQUEST_BODY", "the request body could not be decompressed", details, request_id)
}

export_plugin!(Compress);

//! # hello-http — a plain wasi:http component
//!
//! Implements `wasi:http/incoming-handler@0.2` with the `wasi` crate and
//! nothing covet-specific, so the same `.wasm` runs under `wasmtime serve`
//! and, unchanged, as a covet handler (`kind: wasm`). Like any component
//! built with Rust's std it also imports `wasi:cli/environment`, which
//! `wasmtime serve` links with `-Scli`:
//!
//! ```sh
//! wasmtime serve -Scli hello_http.wasm
//! ```
//!
//! It answers `200 text/plain` with `hello from wasi:http: METHOD PATH`.

use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = method_name(request.method());
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let text = format!("hello from wasi:http: {method} {path}\n");
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain; charset=utf-8".to_vec())])
            .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body, once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body stream, once");
        stream.blocking_write_and_flush(text.as_bytes()).expect("the client reads the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body ends");
    }
}

fn method_name(method: Method) -> String {
    let known = match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => return other,
    };
    known.to_string()
}

wasi::http::proxy::export!(Hello);

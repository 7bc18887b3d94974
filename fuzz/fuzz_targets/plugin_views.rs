//! plugin-api's header and metadata views: a sequence of reads and edits
//! through `Request` and `ResponseMut` (the plugin side of the FFI) over
//! the host's `Exchange` and `HostResponse` (`RequestOps` / `ResponseOps`),
//! checked against a model of what each edit must leave; and the plugin
//! API's own header checks (`http_syntax`) against what the host accepts.
#![no_main]

use abi_stable::sabi_trait::TD_Opaque;
use arbitrary::Arbitrary;
use covet::exchange::HostResponse;
use covet_fuzz::ArbHead;
use covet_plugin_api::{
    Request, ResponseMut,
    ffi::{RequestOps_TO, ResponseOps_TO},
    http_syntax,
};

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    Set(&'a str, &'a str),
    Append(&'a str, &'a str),
    Remove(&'a str),
    Get(&'a str),
    SetMetadata(&'a str, &'a str),
    GetMetadata(&'a str),
    Param(&'a str),
    SetStatus(u16),
    SetResponseHeader(&'a str, &'a str),
    AppendResponseHeader(&'a str, &'a str),
    RemoveResponseHeader(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    head: ArbHead<'a>,
    ops: Vec<Op<'a>>,
}

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    let params: Vec<(String, String)> = input.head.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut ex = input.head.exchange();
    let mut resp = HostResponse::new(http::StatusCode::OK);
    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut req = Request::from_ffi(RequestOps_TO::from_ptr(&mut ex, TD_Opaque));
    let mut out = ResponseMut::from_ffi(ResponseOps_TO::from_ptr(&mut resp, TD_Opaque));
    for op in input.ops.iter().take(64) {
        match *op {
            Op::Set(name, value) => {
                let done = req.set_header(name, value);
                agrees_with_http_syntax(name, value, done.is_ok());
                if done.is_ok() {
                    assert_eq!(req.header(name), text(value), "a header reads back as set");
                    let count = req.headers().iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count();
                    assert!(count <= 1, "set_header replaces every value");
                }
            }
            Op::Append(name, value) => {
                let before = req.headers().len();
                let first = req.header(name).map(str::to_owned);
                let done = req.append_header(name, value);
                agrees_with_http_syntax(name, value, done.is_ok());
                if done.is_ok() {
                    let grew = usize::from(text(value).is_some());
                    assert_eq!(req.headers().len(), before + grew, "append adds one field");
                    if first.is_some() {
                        assert_eq!(req.header(name).map(str::to_owned), first, "append keeps the first value first");
                    }
                }
            }
            Op::Remove(name) => {
                req.remove_header(name);
                assert_eq!(req.header(name), None, "a removed header is gone");
            }
            Op::Get(name) => {
                let listed = req.headers().into_iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.into_string());
                // The list skips non-text values, the lookup reports the first field only.
                if let Some(found) = req.header(name) {
                    assert_eq!(Some(found), listed.as_deref());
                }
            }
            Op::SetMetadata(key, value) => {
                req.set_metadata(key, value);
                metadata.retain(|(k, _)| k != key);
                metadata.push((key.to_owned(), value.to_owned()));
                assert_eq!(req.metadata(key), Some(value));
            }
            Op::GetMetadata(key) => {
                let model = metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
                assert_eq!(req.metadata(key), model, "metadata is the last value set");
            }
            Op::Param(name) => {
                let model = params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                assert_eq!(req.param(name), model);
            }
            Op::SetStatus(status) => {
                let done = out.set_status(status);
                assert_eq!(done.is_ok(), (100..=999).contains(&status), "status {status}");
                if done.is_ok() {
                    assert_eq!(out.status(), status);
                }
            }
            Op::SetResponseHeader(name, value) => {
                let done = out.set_header(name, value);
                agrees_with_http_syntax(name, value, done.is_ok());
                if done.is_ok() {
                    assert_eq!(out.header(name), text(value));
                }
            }
            Op::AppendResponseHeader(name, value) => {
                let done = out.append_header(name, value);
                agrees_with_http_syntax(name, value, done.is_ok());
            }
            Op::RemoveResponseHeader(name) => {
                out.remove_header(name);
                assert_eq!(out.header(name), None);
            }
        }
    }
    for (key, value) in &metadata {
        assert_eq!(req.metadata(key), Some(value.as_str()));
    }
});

/// What a lookup returns for a value that was just set: the value when it
/// is visible ASCII (the view's `to_str`), else nothing.
fn text(value: &str) -> Option<&str> {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)).then_some(value)
}

/// A header the plugin API's checks pass (what a plugin runs at `init`) is
/// one the host accepts: a plugin that checked its config never fails an edit.
fn agrees_with_http_syntax(name: &str, value: &str, accepted: bool) {
    if http_syntax::header_name(name).is_ok() && http_syntax::header_value(name, value).is_ok() {
        assert!(accepted, "http_syntax passes {name:?}: {value:?} but the host refused it");
    }
}

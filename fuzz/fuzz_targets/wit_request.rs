//! The WIT request marshalling: the host side of `covet:plugin/types`
//! (`runtime::wasm::bindings`), called as a guest's imports are, on a real
//! store's `Ctx` holding the lent `Exchange` and `HostResponse`; every value
//! it hands the guest is checked against the exchange. Also a guest's
//! returned `response` record converted for the host (`Response::into_host`).
#![no_main]

use std::cell::RefCell;

use arbitrary::Arbitrary;
use covet::{
    exchange::HostResponse,
    runtime::wasm::fuzzing::{self, Ctx, HostOutgoingResponse, HostRequest, Resource, Store, WitResponse, WitVersion},
};
use covet_fuzz::ArbHead;

#[derive(Arbitrary, Debug)]
enum Op {
    Header(String),
    Set(String, String),
    Append(String, String),
    Remove(String),
    Param(String),
    SetMetadata(String, String),
    Metadata(String),
    SetStatus(u16),
    ResponseSet(String, String),
    ResponseRemove(String),
    ResponseBody(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    head: ArbHead<'a>,
    ops: Vec<Op>,
    returned: (u16, Vec<(String, String)>, Vec<u8>),
}

thread_local! {
    static STORE: RefCell<Store<Ctx>> = RefCell::new(fuzzing::store().expect("a WASM store"));
}

fn req() -> Resource<fuzzing::RequestHandle> {
    Resource::new_own(0)
}

fn out() -> Resource<fuzzing::ResponseHandle> {
    Resource::new_own(0)
}

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    STORE.with_borrow_mut(|store| {
        let ctx = store.data_mut();
        ctx.exchange = Some(input.head.exchange());
        ctx.response = Some(HostResponse::new(http::StatusCode::OK));
        marshal(ctx, &input);
        ctx.exchange = None;
        ctx.response = None;
    });
    guest_response(input.returned);
});

fn marshal(ctx: &mut Ctx, input: &Input<'_>) {
    let ex = ctx.exchange.as_ref().expect("lent");
    let (method, path, query) = (ex.method.to_string(), ex.uri.path().to_owned(), ex.uri.query().map(str::to_owned));
    let (version, headers, body) = (ex.version, covet_fuzz::utf8_headers(&ex.headers), ex.body.to_vec());
    assert_eq!(ctx.method(req()).unwrap(), method);
    assert_eq!(ctx.path(req()).unwrap(), path);
    assert_eq!(ctx.query(req()).unwrap(), query);
    let uri = ctx.uri(req()).unwrap();
    assert!(uri.starts_with(&path) || uri == "/", "uri {uri:?} path {path:?}");
    let expected_version = match version {
        http::Version::HTTP_10 => WitVersion::Http10,
        http::Version::HTTP_2 => WitVersion::Http2,
        http::Version::HTTP_3 => WitVersion::Http3,
        _ => WitVersion::Http11,
    };
    assert!(ctx.version(req()).unwrap() == expected_version);
    assert_eq!(HostRequest::headers(ctx, req()).unwrap(), headers, "the guest gets every text header, in order");
    assert_eq!(HostRequest::body(ctx, req()).unwrap(), body);
    assert_eq!(ctx.request_id(req()).unwrap(), "fuzz-request-id");
    assert_eq!(ctx.route(req()).unwrap(), "/fuzz/{*rest}");
    for op in input.ops.iter().take(64) {
        apply(ctx, op);
    }
}

fn apply(ctx: &mut Ctx, op: &Op) {
    match op {
        Op::Header(name) => {
            let listed = HostRequest::headers(ctx, req()).unwrap().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            if let Some(found) = HostRequest::header(ctx, req(), name.clone()).unwrap() {
                assert_eq!(Some(found), listed);
            }
        }
        Op::Set(name, value) => {
            if HostRequest::set_header(ctx, req(), name.clone(), value.clone()).unwrap().is_ok() && is_text(value) {
                assert_eq!(HostRequest::header(ctx, req(), name.clone()).unwrap().as_deref(), Some(value.as_str()));
            }
        }
        Op::Append(name, value) => {
            let before = HostRequest::headers(ctx, req()).unwrap().len();
            if HostRequest::append_header(ctx, req(), name.clone(), value.clone()).unwrap().is_ok() {
                assert_eq!(HostRequest::headers(ctx, req()).unwrap().len(), before + usize::from(is_text(value)));
            }
        }
        Op::Remove(name) => {
            HostRequest::remove_header(ctx, req(), name.clone()).unwrap();
            assert_eq!(HostRequest::header(ctx, req(), name.clone()).unwrap(), None);
        }
        Op::Param(name) => {
            let model = ctx.exchange.as_ref().unwrap().params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            assert_eq!(ctx.param(req(), name.clone()).unwrap(), model);
        }
        Op::SetMetadata(key, value) => {
            ctx.set_metadata(req(), key.clone(), value.clone()).unwrap();
            assert_eq!(ctx.metadata(req(), key.clone()).unwrap().as_deref(), Some(value.as_str()));
        }
        Op::Metadata(key) => {
            let model = ctx.exchange.as_ref().unwrap().metadata_value(key).map(str::to_owned);
            assert_eq!(ctx.metadata(req(), key.clone()).unwrap(), model);
        }
        Op::SetStatus(status) => {
            let done = ctx.set_status(out(), *status).unwrap();
            assert_eq!(done.is_ok(), (100..=999).contains(status));
            if done.is_ok() {
                assert_eq!(ctx.status(out()).unwrap(), *status);
            }
        }
        Op::ResponseSet(name, value) => {
            let done = HostOutgoingResponse::set_header(ctx, out(), name.clone(), value.clone()).unwrap();
            if done.is_ok() && is_text(value) {
                assert_eq!(HostOutgoingResponse::header(ctx, out(), name.clone()).unwrap().as_deref(), Some(value.as_str()));
            }
        }
        Op::ResponseRemove(name) => {
            HostOutgoingResponse::remove_header(ctx, out(), name.clone()).unwrap();
            assert_eq!(HostOutgoingResponse::header(ctx, out(), name.clone()).unwrap(), None);
        }
        Op::ResponseBody(body) => {
            HostOutgoingResponse::set_body(ctx, out(), body.clone()).unwrap();
            assert_eq!(&HostOutgoingResponse::body(ctx, out()).unwrap(), body);
            assert!(HostOutgoingResponse::headers(ctx, out()).unwrap().iter().all(|(n, _)| n != "content-length"));
        }
    }
}

/// A guest's `response` record becomes the host's response, or is refused whole.
fn guest_response((status, headers, body): (u16, Vec<(String, String)>, Vec<u8>)) {
    let count = headers.len();
    let record = WitResponse { status, headers, body: body.clone() };
    if let Ok(resp) = record.into_host() {
        assert_eq!(resp.status.as_u16(), status);
        assert_eq!(resp.headers.len(), count, "every header kept");
        assert_eq!(&resp.body[..], &body[..]);
    }
}

fn is_text(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

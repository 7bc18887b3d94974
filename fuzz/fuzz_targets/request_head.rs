//! The request head → `Exchange` conversion: raw HTTP/1 head bytes parsed as
//! hyper parses them (httparse), or a head built field by field (for HTTP/2
//! and HTTP/3, whose authority lives in the URI); then the host's checks in
//! the order the service runs them (`server::framing::check`,
//! `service::check_headers`, `service::present_authority`), the exchange
//! (`Exchange::from_parts`) and what a plugin reads of it through the
//! plugin API's `Request` view over the host's `RequestOps`.
#![no_main]

use abi_stable::sabi_trait::TD_Opaque;
use arbitrary::{Arbitrary, Unstructured};
use covet::{manifest::Limits, server::{framing, watchdog::ConnState}, service};
use covet_fuzz::ArbHead;
use covet_plugin_api::{Request, ffi::RequestOps_TO};
use http::{Version, header, request::Parts};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let parts = if mode & 1 == 0 {
        covet_fuzz::parse_head(rest)
    } else {
        ArbHead::arbitrary(&mut Unstructured::new(rest)).ok().map(|head| head.parts())
    };
    if let Some(parts) = parts {
        admit(parts);
    }
});

fn admit(mut parts: Parts) {
    let limits = Limits::default();
    let state = ConnState::default();
    if framing::check(&parts, &state, &limits, "fuzz").is_some() {
        return;
    }
    if parts.version <= Version::HTTP_11 {
        let hosts = parts.headers.get_all(header::HOST).iter().count();
        assert!(hosts <= 1, "framing let through {hosts} Host fields");
        assert!(hosts == 1 || parts.version == Version::HTTP_10, "framing let through an HTTP/1.1 request without Host");
    }
    if service::check_headers(&parts.headers, &limits, "fuzz").is_some() {
        return;
    }
    if parts.version >= Version::HTTP_2 {
        let had_host = parts.headers.contains_key(header::HOST);
        let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
        service::present_authority(&mut parts);
        match (had_host, authority) {
            (false, Some(authority)) => {
                let host = parts.headers.get(header::HOST).expect("the authority becomes Host");
                assert_eq!(host, authority.rsplit('@').next().unwrap_or_default(), "Host is the authority without userinfo");
            }
            (false, None) => assert!(!parts.headers.contains_key(header::HOST)),
            (true, _) => {}
        }
    }
    // An empty path is `/` (RFC 9110 §4.2.3), also before a query (`http://h?q`).
    let expected_uri = match parts.uri.path_and_query().map_or("/", |pq| pq.as_str()) {
        pq if pq.starts_with('?') => format!("/{pq}"),
        pq => pq.to_owned(),
    };
    let expected_headers = covet_fuzz::utf8_headers(&parts.headers);
    let map = parts.headers.clone();
    let method = parts.method.clone();
    let mut ex = covet_fuzz::exchange(parts, Vec::new(), bytes::Bytes::new());
    let req = Request::from_ffi(RequestOps_TO::from_ptr(&mut ex, TD_Opaque));
    assert_eq!(req.method(), method.as_str());
    assert_eq!(req.uri(), expected_uri);
    let (path, query) = (req.path(), req.query());
    assert_eq!(query.map_or(path.to_owned(), |q| format!("{path}?{q}")), expected_uri);
    let seen: Vec<(String, String)> = req.headers().into_iter().map(|h| (h.name.into_string(), h.value.into_string())).collect();
    assert_eq!(seen, expected_headers, "the view lists every UTF-8 header, in order");
    for (name, _) in &expected_headers {
        // The first field of that name, when it is text (a later one does not stand in).
        let first = map.get(name.as_str()).and_then(|v| v.to_str().ok());
        assert_eq!(req.header(name), first);
        assert_eq!(req.header(&name.to_ascii_uppercase()), first, "header lookups ignore case");
    }
    assert_eq!(req.request_id(), "fuzz-request-id");
    assert_eq!(req.client_ip(), "192.0.2.7");
}

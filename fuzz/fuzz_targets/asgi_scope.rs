//! The ASGI scope building: an `Exchange` (from a raw HTTP/1 head, or a
//! head built field by field for any version) through the code an ASGI
//! app's request takes (`asgi::Head::new`, its conversion to Python, the
//! bridge's `http_scope`) in the embedded interpreter, started once. The
//! scope must say what the exchange says, in the types ASGI 3.0 fixes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use covet::{exchange::Exchange, runtime::python::fuzzing};
use covet_fuzz::ArbHead;
use pyo3::{
    prelude::*,
    types::{PyBytes, PyDict, PyList, PyTuple},
};
use std::sync::Once;

static START: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    START.call_once(|| fuzzing::start().expect("the interpreter starts"));
    let Some((&mode, rest)) = data.split_first() else { return };
    let ex = if mode & 1 == 0 {
        let Some(parts) = covet_fuzz::parse_head(rest) else { return };
        covet_fuzz::exchange(parts, Vec::new(), bytes::Bytes::new())
    } else {
        let Ok(head) = ArbHead::arbitrary(&mut Unstructured::new(rest)) else { return };
        head.exchange()
    };
    Python::attach(|py| check(py, &ex));
});

fn check(py: Python<'_>, ex: &Exchange) {
    let scope = fuzzing::asgi_scope(py, ex).expect("a scope for every exchange");
    let scope = scope.cast::<PyDict>().expect("the scope is a dict");
    let get = |key: &str| scope.get_item(key).expect("lookup").unwrap_or_else(|| panic!("scope[{key:?}] missing"));
    let text = |key: &str| get(key).extract::<String>().unwrap_or_else(|e| panic!("scope[{key:?}] is not str: {e}"));
    let bytes = |key: &str| get(key).cast::<PyBytes>().unwrap_or_else(|_| panic!("scope[{key:?}] is not bytes")).as_bytes().to_vec();
    assert_eq!(text("type"), "http");
    assert_eq!(text("method"), ex.method.as_str());
    assert!(matches!(text("http_version").as_str(), "1.0" | "1.1" | "2" | "3"));
    assert!(matches!(text("scheme").as_str(), "http" | "https"));
    assert_eq!(bytes("raw_path"), ex.uri.path().as_bytes());
    assert_eq!(bytes("query_string"), ex.uri.query().unwrap_or("").as_bytes());
    let path = text("path");
    assert!(path.len() <= ex.uri.path().len() * 3, "path grew: {path:?}");
    if !ex.uri.path().contains('%') {
        assert_eq!(path, ex.uri.path(), "a path without escapes is the raw path");
    }
    let headers = get("headers");
    let headers = headers.cast::<PyList>().expect("headers is a list");
    assert_eq!(headers.len(), ex.headers.len(), "every header field, once");
    for (item, (name, value)) in headers.iter().zip(ex.headers.iter()) {
        let pair = item.cast::<PyTuple>().expect("a header is a pair");
        assert_eq!(pair.get_item(0).unwrap().cast::<PyBytes>().unwrap().as_bytes(), name.as_str().as_bytes(), "names are lower-case bytes");
        assert_eq!(pair.get_item(1).unwrap().cast::<PyBytes>().unwrap().as_bytes(), value.as_bytes());
    }
    for key in ["client", "server"] {
        let value = get(key);
        if !value.is_none() {
            let (host, port): (String, u16) = value.extract().unwrap_or_else(|e| panic!("scope[{key:?}] is not (str, int): {e}"));
            assert!(!host.is_empty() || key == "server", "{key} host empty");
            let _ = port;
        }
    }
    let (client, port): (String, u16) = get("client").extract().expect("the client is known");
    assert_eq!((client.as_str(), port), ("192.0.2.7", 40000));
}

//! A small client for the host's admin API (`/v1/…`), for the control-plane
//! subcommands: one request per command over HTTP/1.1, on a current-thread
//! runtime, with a 10 s limit.
//!
//! Failures are sorted by who is at fault, because the exit code tells
//! scripts which: the host refused the change ([`AdminError::Refused`], the
//! host's message verbatim) or the admin API could not be used at all
//! ([`AdminError::Unreachable`], [`AdminError::Unauthorized`]).

use std::{fmt, str::FromStr, time::Duration};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header, uri::Authority};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;

/// Where the admin API listens when neither `--admin` nor `COVET_ADMIN` says.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9901";

/// The environment variable holding the bearer token, when one is configured.
pub const TOKEN_ENV: &str = "COVET_ADMIN_TOKEN";

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The admin API's address: `HOST:PORT`, parsed from `HOST:PORT` or
/// `http://HOST:PORT` (a trailing `/` is fine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAddr(Authority);

impl FromStr for AdminAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<AdminAddr, String> {
        let usage = || format!("{text:?} is not an admin address: expected HOST:PORT or http://HOST:PORT");
        if text.starts_with("https://") {
            return Err(format!("{text:?}: the admin API speaks plain HTTP; use http://HOST:PORT"));
        }
        let rest = text.strip_prefix("http://").unwrap_or(text);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
            return Err(usage());
        }
        let authority: Authority = rest.parse().map_err(|_| usage())?;
        if authority.port_u16().is_none() {
            return Err(format!("{text:?} has no port: expected HOST:PORT, e.g. {DEFAULT_ADDR}"));
        }
        Ok(AdminAddr(authority))
    }
}

impl fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.0)
    }
}

/// Why a request did not succeed.
#[derive(Debug)]
pub enum AdminError {
    /// The host answered and refused: its `error.message`, verbatim.
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// `error.code`.
        code: String,
        /// `error.message` (may be multi-line diagnostics).
        message: String,
    },
    /// The admin API refused the credentials (401).
    Unauthorized {
        /// The API's message.
        message: String,
        /// Whether a token was sent.
        token_sent: bool,
    },
    /// No usable answer: connection refused, timeout, not the admin API.
    Unreachable(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Refused { message, .. } => f.write_str(message),
            AdminError::Unauthorized { message, token_sent: true } => {
                write!(f, "the admin API refused the token in ${TOKEN_ENV}: {message}")
            }
            AdminError::Unauthorized { message, token_sent: false } => {
                write!(f, "the admin API needs a token; set ${TOKEN_ENV}: {message}")
            }
            AdminError::Unreachable(why) => f.write_str(why),
        }
    }
}

/// A client for one admin API address.
pub struct AdminClient {
    addr: AdminAddr,
    token: Option<String>,
}

/// A successful answer: the body as received and as JSON.
#[derive(Debug)]
pub struct Answer {
    /// The body, byte for byte (what `--json` prints).
    pub raw: Bytes,
    /// The body parsed.
    pub json: Value,
}

impl AdminClient {
    /// A client for `addr`; `token` is sent as `authorization: Bearer …`.
    pub fn new(addr: AdminAddr, token: Option<String>) -> AdminClient {
        AdminClient { addr, token: token.filter(|t| !t.is_empty()) }
    }

    /// A client for `addr` with the token from `COVET_ADMIN_TOKEN`, if set.
    pub fn from_env(addr: AdminAddr) -> AdminClient {
        AdminClient::new(addr, std::env::var(TOKEN_ENV).ok())
    }

    /// The address it talks to.
    pub fn addr(&self) -> &AdminAddr {
        &self.addr
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Answer, AdminError> {
        self.call(Method::GET, path, None)
    }

    /// `POST path` with an optional JSON body.
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Answer, AdminError> {
        self.call(Method::POST, path, body)
    }

    /// Sends one request and sorts the answer into success or [`AdminError`].
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, AdminError> {
        let what = format!("{method} {}{path}", self.addr);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminError::Unreachable(format!("cannot start the client runtime: {e}")))?;
        let request = self.request(method, path, body)?;
        let sent = runtime.block_on(async { tokio::time::timeout(TIMEOUT, send(request)).await });
        let (status, raw) = match sent {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => return Err(AdminError::Unreachable(format!("cannot reach the admin API at {}: {why}", self.addr))),
            Err(_) => return Err(AdminError::Unreachable(format!("{what}: no answer within {}s", TIMEOUT.as_secs()))),
        };
        classify(&what, status, raw, self.token.is_some())
    }

    fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Request<Full<Bytes>>, AdminError> {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.addr));
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        builder.body(Full::new(body)).map_err(|e| AdminError::Unreachable(format!("cannot build the request: {e}")))
    }
}

async fn send(request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.map_err(|e| causes(&e))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| causes(&e))?.to_bytes();
    Ok((status, body))
}

/// The innermost cause of an error (`Connection refused (os error 111)`
/// rather than hyper's `client error (Connect)` around it).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// Sorts an answer: 2xx with JSON is success; an `{"error": …}` body is a
/// refusal (401 → unauthorized); anything else means this is not the admin API.
fn classify(what: &str, status: StatusCode, raw: Bytes, token_sent: bool) -> Result<Answer, AdminError> {
    let json: Option<Value> = serde_json::from_slice(&raw).ok();
    let error = json.as_ref().map(|j| &j["error"]);
    let code = error.and_then(|e| e["code"].as_str()).map(str::to_owned);
    let message = error.and_then(|e| e["message"].as_str()).map(str::to_owned);
    let not_admin = |said: Option<&str>| {
        let said = said.map_or_else(|| format!("{:?}", String::from_utf8_lossy(&raw[..raw.len().min(120)])), str::to_owned);
        let hint = "is this covet's admin API? The host prints `admin listening on http://ADDR`";
        AdminError::Unreachable(format!("{what} answered {status}: {said}\n{hint}"))
    };
    if status.is_success() {
        return match json {
            Some(json) => Ok(Answer { raw, json }),
            None => Err(not_admin(None)),
        };
    }
    match (status, code, message) {
        (StatusCode::UNAUTHORIZED, _, message) => {
            Err(AdminError::Unauthorized { message: message.unwrap_or_else(|| status.to_string()), token_sent })
        }
        // Every 404 of the admin API for a valid route names an unknown plugin;
        // another 404 (covet's data plane, another server) is the wrong address.
        (StatusCode::NOT_FOUND, Some(code), message) if code != "unknown_plugin" => Err(not_admin(message.as_deref())),
        (_, Some(code), Some(message)) => Err(AdminError::Refused { status, code, message }),
        _ => Err(not_admin(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addr(text: &str) -> Result<String, String> {
        text.parse::<AdminAddr>().map(|a| a.to_string())
    }

    #[test]
    fn addresses_take_host_port_with_or_without_the_scheme() {
        assert_eq!(addr("127.0.0.1:9901").unwrap(), "http://127.0.0.1:9901");
        assert_eq!(addr("http://127.0.0.1:9901").unwrap(), "http://127.0.0.1:9901");
        assert_eq!(addr("http://localhost:9901/").unwrap(), "http://localhost:9901");
        assert_eq!(addr("[::1]:9901").unwrap(), "http://[::1]:9901");
    }

    #[test]
    fn addresses_without_a_port_or_with_a_path_are_refused_with_the_expected_form() {
        assert!(addr("localhost").unwrap_err().contains("has no port"));
        assert!(addr("http://localhost").unwrap_err().contains("has no port"));
        assert!(addr("http://h:1/v1").unwrap_err().contains("expected HOST:PORT or http://HOST:PORT"));
        assert!(addr("").unwrap_err().contains("expected HOST:PORT"));
        assert!(addr("user@h:1").is_err());
        assert!(addr("https://h:1").unwrap_err().contains("plain HTTP"));
        assert!(addr("h:notaport").is_err());
    }

    fn body(value: Value) -> Bytes {
        Bytes::from(value.to_string())
    }

    #[test]
    fn an_error_body_is_a_refusal_with_the_hosts_message_verbatim() {
        let message = "error: unknown key\n  --> plugins.yaml:3:5";
        let raw = body(json!({ "error": { "code": "manifest_invalid", "message": message } }));
        let err = classify("POST /v1/reload", StatusCode::UNPROCESSABLE_ENTITY, raw, false).unwrap_err();
        assert!(matches!(&err, AdminError::Refused { code, .. } if code == "manifest_invalid"));
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn unknown_plugin_is_a_refusal_but_another_404_is_the_wrong_address() {
        let unknown = body(json!({ "error": { "code": "unknown_plugin", "message": "no plugin named \"x\"" } }));
        let err = classify("x", StatusCode::NOT_FOUND, unknown, false).unwrap_err();
        assert!(matches!(err, AdminError::Refused { .. }));
        let data_plane = body(json!({ "error": { "code": "NOT_FOUND", "message": "no route matches this path" } }));
        let err = classify("x", StatusCode::NOT_FOUND, data_plane, false).unwrap_err();
        assert!(matches!(&err, AdminError::Unreachable(m) if m.contains("is this covet's admin API?")), "{err}");
    }

    #[test]
    fn unauthorized_says_whether_a_token_was_sent() {
        let raw = body(json!({ "error": { "code": "unauthorized", "message": "bad token" } }));
        let sent = classify("x", StatusCode::UNAUTHORIZED, raw.clone(), true).unwrap_err();
        assert!(sent.to_string().contains("refused the token in $COVET_ADMIN_TOKEN"), "{sent}");
        let missing = classify("x", StatusCode::UNAUTHORIZED, raw, false).unwrap_err();
        assert!(missing.to_string().contains("needs a token; set $COVET_ADMIN_TOKEN"), "{missing}");
    }

    #[test]
    fn a_success_must_be_json() {
        let ok = classify("x", StatusCode::OK, body(json!({ "plugins": [] })), false).unwrap();
        assert_eq!(ok.json, json!({ "plugins": [] }));
        let html = classify("x", StatusCode::OK, Bytes::from_static(b"<html>"), false).unwrap_err();
        assert!(matches!(html, AdminError::Unreachable(_)));
    }

    #[test]
    fn nothing_listening_is_unreachable_and_names_the_address() {
        // Nothing listens on loopback port 1 (tcpmux) on a test machine.
        let client = AdminClient::new("127.0.0.1:1".parse().unwrap(), None);
        let err = client.get("/v1/plugins").unwrap_err();
        assert!(matches!(&err, AdminError::Unreachable(m) if m.contains("http://127.0.0.1:1")), "{err}");
    }
}

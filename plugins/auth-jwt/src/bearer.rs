//! The HTTP side of RFC 6750: where the token is read from, and how a refusal
//! is answered (401, a `WWW-Authenticate` challenge, the covet JSON error body).

use covet_plugin_api::{Request, Response};

/// The message when no token was sent.
pub const MISSING_TOKEN: &str = "missing bearer token";

/// Where the token is: a header, and the auth scheme in front of it.
pub struct TokenSource {
    header: String,
    scheme: String,
}

impl TokenSource {
    /// Reads from `header`; `scheme` is matched case-insensitively, and an
    /// empty scheme means the whole header value is the token.
    pub fn new(header: &str, scheme: &str) -> TokenSource {
        TokenSource { header: header.to_ascii_lowercase(), scheme: scheme.to_string() }
    }

    /// The token, or `None` when the header is absent, uses another scheme
    /// or carries no token (RFC 6750 §3.1 treats all three as "no credentials").
    pub fn token<'r>(&self, req: &'r Request<'_>) -> Option<&'r str> {
        let value = req.header(&self.header)?.trim();
        let token = match self.scheme.is_empty() {
            true => value,
            false => strip_scheme(value, &self.scheme)?,
        };
        (!token.is_empty()).then_some(token)
    }

    /// The scheme named in challenges.
    fn challenge_scheme(&self) -> &str {
        if self.scheme.is_empty() { "Bearer" } else { &self.scheme }
    }

    /// 401 for a request without a token: a bare challenge, no error code.
    pub fn missing(&self, request_id: &str) -> Response {
        unauthorized(self.challenge_scheme().to_string(), MISSING_TOKEN, request_id)
    }

    /// 401 for a refused token; `reason` must not contain `"` or `\`.
    pub fn invalid(&self, reason: &str, request_id: &str) -> Response {
        let scheme = self.challenge_scheme();
        let challenge = format!("{scheme} error=\"invalid_token\", error_description=\"{reason}\"");
        unauthorized(challenge, reason, request_id)
    }

    /// 503 while a remote key set has not arrived: the token may be good, so
    /// no `invalid_token` challenge; the client may retry.
    pub fn unavailable(&self, reason: &str, request_id: &str) -> Response {
        Response::error(503, "SERVICE_UNAVAILABLE", reason, serde_json::Value::Null, request_id)
            .with_header("retry-after", "1")
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (head, rest) = value.split_at_checked(scheme.len())?;
    let separated = rest.starts_with([' ', '\t']);
    (separated && head.eq_ignore_ascii_case(scheme)).then(|| rest.trim_start())
}

fn unauthorized(challenge: String, message: &str, request_id: &str) -> Response {
    Response::error(401, "UNAUTHORIZED", message, serde_json::Value::Null, request_id)
        .with_header("www-authenticate", challenge)
}

#[cfg(test)]
mod tests {
    use covet_plugin_api::testing::TestRequest;

    use super::*;

    fn token_of(source: &TokenSource, req: TestRequest) -> Option<String> {
        let mut req = req;
        source.token(&req.view()).map(str::to_string)
    }

    #[test]
    fn scheme_is_case_insensitive_and_needs_a_space() {
        let source = TokenSource::new("Authorization", "Bearer");
        let get = |v: &str| token_of(&source, TestRequest::get("/").header("authorization", v));
        assert_eq!(get("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(get("bearer   abc ").as_deref(), Some("abc"));
        assert_eq!(get("Bearerabc"), None);
        assert_eq!(get("Basic abc"), None);
        assert_eq!(get("Bearer "), None);
    }

    #[test]
    fn empty_scheme_takes_the_whole_value() {
        let source = TokenSource::new("x-token", "");
        assert_eq!(token_of(&source, TestRequest::get("/").header("x-token", " abc ")).as_deref(), Some("abc"));
        assert_eq!(token_of(&source, TestRequest::get("/")), None);
    }

    #[test]
    fn missing_token_has_a_bare_challenge() {
        let resp = TokenSource::new("authorization", "Bearer").missing("r-1");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["message"], MISSING_TOKEN);
        assert_eq!(body["error"]["request_id"], "r-1");
    }
}

//! The admin token check: `authorization: Bearer <token>` on every request,
//! HTTP and gRPC alike, compared in constant time.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, header::AUTHORIZATION};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The configured admin token. Only its SHA-256 is kept, so comparing a
/// presented token takes the same time whatever its length or content.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The token `secret`.
    pub fn new(secret: &str) -> Token {
        Token { digest: Sha256::digest(secret.as_bytes()).into() }
    }

    /// Whether `presented` is the token (constant time in its content).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let difference = presented.iter().zip(&self.digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }

    /// Whether `headers` carry `authorization: Bearer <this token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => bearer(value.as_bytes()).is_some_and(|token| self.matches(token)),
            _ => false,
        }
    }
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.strip_prefix(b" ")?.trim_ascii();
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    (!token.is_empty()).then_some(token)
}

/// Middleware: lets a request through only with the right token; answers
/// 401 (`unauthorized`, or gRPC `UNAUTHENTICATED`) otherwise.
pub async fn require_token(State(token): State<Arc<Token>>, request: Request, next: Next) -> Response {
    if token.admits(request.headers()) {
        return next.run(request).await;
    }
    let error = ApiError::unauthorized();
    match super::is_grpc(request.headers()) {
        true => error.into_grpc_response(),
        false => axum::response::IntoResponse::into_response(error),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = Token::new("s3cret");
        assert!(token.admits(&headers(&["Bearer s3cret"])));
        assert!(token.admits(&headers(&["bearer  s3cret "])), "scheme is case-insensitive, spaces trimmed");
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET", "Basic s3cret", "Bearers3cret", "s3cret", "Bearer ", ""] {
            assert!(!token.admits(&headers(&[wrong])), "{wrong:?} must be refused");
        }
        assert!(!token.admits(&HeaderMap::new()), "no header");
        assert!(!token.admits(&headers(&["Bearer s3cret", "Bearer s3cret"])), "two authorization headers");
    }

    #[test]
    fn the_comparison_sees_every_byte() {
        let token = Token::new("abcdefgh");
        assert!(token.matches(b"abcdefgh"));
        assert!(!token.matches(b"abcdefgX"));
        assert!(!token.matches(b"Xbcdefgh"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn debug_output_does_not_show_the_token() {
        assert_eq!(format!("{:?}", Token::new("s3cret")), "Token(<redacted>)");
    }
}

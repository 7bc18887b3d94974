//! Fixture builders: configs, signed tokens, and requests run through the filter.

use std::{
    sync::Once,
    time::{SystemTime, UNIX_EPOCH},
};

use covet_auth_jwt::AuthJwt;
use covet_plugin_api::{
    AsyncPlugin, Config, Flow,
    testing::{TestRequest, block_on},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The environment variable tests keep the HMAC secret in.
pub const SECRET_VAR: &str = "COVET_AUTH_JWT_TEST_SECRET";
/// 64 bytes: long enough for HS512.
pub const SECRET: &str = "test-secret-7f3a9c1e5b2d4f6a8c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a";
/// An environment variable holding a secret too short for any HS algorithm.
pub const SHORT_SECRET_VAR: &str = "COVET_AUTH_JWT_TEST_SHORT_SECRET";
/// Its value, which must never show up in an error.
pub const SHORT_SECRET: &str = "short-but-secret-value";

/// Every algorithm the plugin verifies.
pub const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Sets the test secrets once, before any test reads the environment.
pub fn set_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert_eq!(SECRET.len(), 64);
        // SAFETY: runs once, under `Once`, and every test calls it before
        // anything in this process reads the environment (plugin init does).
        unsafe {
            std::env::set_var(SECRET_VAR, SECRET);
            std::env::set_var(SHORT_SECRET_VAR, SHORT_SECRET);
        }
    });
}

/// The absolute path of a fixture key file.
pub fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// One PEM key per family, each with its own kid, plus the HMAC secret.
pub fn pem_keys() -> Value {
    json!([
        { "kid": "hs", "algorithms": ["HS256", "HS384", "HS512"], "secret_env": SECRET_VAR },
        { "kid": "rsa", "algorithms": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"], "pem_file": fixture("rsa.pub.pem") },
        { "kid": "ec256", "algorithms": ["ES256"], "pem_file": fixture("ec-p256.pub.pem") },
        { "kid": "ec384", "algorithms": ["ES384"], "pem_file": fixture("ec-p384.pub.pem") },
        { "kid": "ed", "algorithms": ["EdDSA"], "pem_file": fixture("ed25519.pub.pem") },
    ])
}

/// The kid [`pem_keys`] gives the key for `alg`.
pub fn pem_kid(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "hs",
        Algorithm::ES256 => "ec256",
        Algorithm::ES384 => "ec384",
        Algorithm::EdDSA => "ed",
        _ => "rsa",
    }
}

/// A config with [`pem_keys`] and `extra` fields merged in.
pub fn config_with(extra: Value) -> Value {
    let mut config = json!({ "keys": pem_keys() });
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    config
}

/// Builds the filter, failing the test with the init error.
pub fn plugin(config: Value) -> AuthJwt {
    set_env();
    AuthJwt::init(Config::from_json(&config.to_string())).unwrap_or_else(|e| panic!("init failed: {e}"))
}

/// The init error for `config`.
pub fn init_error(config: Value) -> String {
    set_env();
    match AuthJwt::init(Config::from_json(&config.to_string())) {
        Ok(_) => panic!("init accepted {config}"),
        Err(e) => e,
    }
}

/// Claims for alice, valid for ten minutes, with `extra` merged in.
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({ "sub": "alice", "iat": now(), "exp": now() + 600 });
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    claims
}

/// The fixture private key (or the test secret) that signs `alg`.
pub fn signing_key(alg: Algorithm) -> EncodingKey {
    let pem = |name: &str| std::fs::read(fixture(name)).unwrap();
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(EncodingKey::from_secret(SECRET.as_bytes())),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec-p256.pem")),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem("ec-p384.pem")),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed25519.pem")),
        _ => EncodingKey::from_rsa_pem(&pem("rsa.pem")),
    };
    key.unwrap()
}

/// A token signed with the fixture key for `alg`.
pub fn token(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    token_with_key(alg, kid, claims, &signing_key(alg))
}

/// A token signed with any key.
pub fn token_with_key(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

/// An unsigned token with any header, as an attacker would build it.
pub fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(header), part(claims))
}

/// A request after the filter ran, with what the filter decided.
pub struct Outcome {
    pub flow: Flow,
    pub req: TestRequest,
}

/// Runs the filter on a GET carrying `Authorization: Bearer <token>`.
pub fn send(plugin: &AuthJwt, token: &str) -> Outcome {
    run(plugin, TestRequest::get("/").header("authorization", &format!("Bearer {token}")))
}

/// Runs the filter on any request.
pub fn run(plugin: &AuthJwt, mut req: TestRequest) -> Outcome {
    let flow = block_on(plugin.on_request(&mut req.view()));
    Outcome { flow, req }
}

impl Outcome {
    /// Asserts the request went on to the handler.
    pub fn assert_continues(&self) -> &Self {
        if let Flow::Respond(resp) = &self.flow {
            panic!("refused: {:?} {}", resp.header("www-authenticate"), String::from_utf8_lossy(&resp.body));
        }
        self
    }

    /// Asserts a 401 with an `invalid_token` challenge carrying `reason`.
    pub fn assert_refused(&self, reason: &str) {
        let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"");
        self.assert_401(&challenge, reason);
    }

    /// Asserts a 401 with the given challenge and the JSON error body.
    pub fn assert_401(&self, challenge: &str, message: &str) {
        let Flow::Respond(resp) = &self.flow else { panic!("expected a 401 ({message}), the request went on") };
        assert_eq!(resp.status, 401);
        assert_eq!(resp.header("www-authenticate"), Some(challenge));
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let mut body: Value = serde_json::from_slice(&resp.body).unwrap();
        let timestamp = body["error"].as_object_mut().and_then(|e| e.remove("timestamp"));
        assert!(timestamp.and_then(|t| t.as_str().map(|t| t.ends_with('Z'))).unwrap_or(false), "timestamp: {body}");
        let expected = json!({
            "error": { "code": "UNAUTHORIZED", "message": message, "details": null, "request_id": "test-request" }
        });
        assert_eq!(body, expected);
    }
}

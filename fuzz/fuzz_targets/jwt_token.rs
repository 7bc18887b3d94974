//! auth-jwt's token parsing and verification: arbitrary token text through
//! `AuthJwt::authenticate` (JOSE header, key choice, signature, claims) and
//! arbitrary `Authorization` values through the filter itself
//! (`on_request_now` over the host's `Exchange`), with real keys: an HMAC
//! secret and the RSA, P-256 and Ed25519 test keys (tests/fixtures/keys).
//! No input may be accepted unless its signed part is one the harness signed.
#![no_main]

use std::{collections::HashSet, path::Path, sync::LazyLock};

use abi_stable::sabi_trait::TD_Opaque;
use covet_auth_jwt::AuthJwt;
use covet_plugin_api::{AsyncPlugin, Config, Flow, Request, ffi::RequestOps_TO};
use http::{HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/keys");
const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-fuzz-secret-0123456789";
const CONFIG: &str = r#"{
  "keys": [
    { "kid": "hs-1", "algorithms": ["HS256", "HS384"], "secret_env": "COVET_FUZZ_JWT_SECRET" },
    { "kid": "rsa-1", "algorithms": ["RS256", "PS256"], "pem_file": "rsa.pub.pem" },
    { "kid": "ec-1", "algorithms": ["ES256"], "pem_file": "ec-p256.pub.pem" },
    { "kid": "ed-1", "algorithms": ["EdDSA"], "pem_file": "ed25519.pub.pem" }
  ],
  "issuer": "https://issuer.fuzz",
  "audience": "api",
  "forward_claims": { "sub": "x-user-id" }
}"#;

struct Harness {
    auth: AuthJwt,
    /// `header.payload` of every token the harness signed.
    signed: HashSet<String>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    // SAFETY: set once, before anything else in this process reads the environment.
    unsafe { std::env::set_var("COVET_FUZZ_JWT_SECRET", SECRET) };
    let auth = AuthJwt::from_config(Config::new(CONFIG, Path::new(KEYS), "fuzz"), None).expect("the fuzz config loads");
    let tokens = mint();
    for token in &tokens {
        auth.authenticate(token).unwrap_or_else(|e| panic!("a token the harness signed is refused: {}", e.reason()));
    }
    if let Some(dir) = std::env::var_os("COVET_FUZZ_WRITE_SEEDS") {
        for (i, token) in tokens.iter().enumerate() {
            std::fs::write(Path::new(&dir).join(format!("minted-{i}")), format!("\x00{token}")).expect("seed written");
            std::fs::write(Path::new(&dir).join(format!("minted-header-{i}")), format!("\x01Bearer {token}")).expect("seed written");
        }
    }
    let signed = tokens.iter().map(|t| t.rsplit_once('.').expect("three parts").0.to_owned()).collect();
    Harness { auth, signed }
});

fn mint() -> Vec<String> {
    let claims = serde_json::json!({
        "sub": "fuzz-user", "iss": "https://issuer.fuzz", "aud": "api",
        "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "exp": 4_102_444_800u64,
        "scope": "read write", "roles": ["a", "b"], "n": 1.5
    });
    let pem = |name: &str| std::fs::read(Path::new(KEYS).join(name)).expect("test key");
    let keys = [
        ("hs-1", Algorithm::HS256, EncodingKey::from_secret(SECRET.as_bytes())),
        ("hs-1", Algorithm::HS384, EncodingKey::from_secret(SECRET.as_bytes())),
        ("rsa-1", Algorithm::RS256, EncodingKey::from_rsa_pem(&pem("rsa.pem")).expect("rsa key")),
        ("rsa-1", Algorithm::PS256, EncodingKey::from_rsa_pem(&pem("rsa.pem")).expect("rsa key")),
        ("ec-1", Algorithm::ES256, EncodingKey::from_ec_pem(&pem("ec-p256.pem")).expect("ec key")),
        ("ed-1", Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem("ed25519.pem")).expect("ed key")),
    ];
    keys.iter()
        .map(|(kid, alg, key)| {
            let mut header = Header::new(*alg);
            header.kid = Some((*kid).to_owned());
            jsonwebtoken::encode(&header, &claims, key).expect("signed")
        })
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if mode & 1 == 0 {
        if harness.auth.authenticate(text).is_ok() {
            assert!(signed_by_harness(harness, text), "accepted a token the harness never signed: {text:?}");
        }
    } else {
        through_filter(harness, rest);
    }
});

fn signed_by_harness(harness: &Harness, token: &str) -> bool {
    token.rsplit_once('.').is_some_and(|(signed, _)| harness.signed.contains(signed))
}

/// The whole filter, with `value` as the `Authorization` header.
fn through_filter(harness: &Harness, value: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(value) else { return };
    let mut parts = covet_fuzz::ArbHead { method: b"GET", uri: "/", version: 1, headers: Vec::new(), params: Vec::new(), body: b"" }.parts();
    parts.headers.insert(header::AUTHORIZATION, value.clone());
    let mut ex = covet_fuzz::exchange(parts, Vec::new(), bytes::Bytes::new());
    let mut req = Request::from_ffi(RequestOps_TO::from_ptr(&mut ex, TD_Opaque));
    match harness.auth.on_request_now(&mut req).expect("local keys never wait") {
        Flow::Continue => {
            let text = value.to_str().expect("accepted, so text").trim();
            let token = text.get(6..).unwrap_or_default().trim_start();
            assert!(text[..6].eq_ignore_ascii_case("bearer"), "accepted without the scheme: {value:?}");
            assert!(signed_by_harness(harness, token), "the filter let through {value:?}");
            assert_eq!(req.metadata("jwt.sub"), Some("fuzz-user"));
            assert_eq!(req.header("x-user-id"), Some("fuzz-user"));
        }
        Flow::Respond(resp) => assert!(resp.status == 401, "a bad token is a 401, not {}", resp.status),
        _ => panic!("the filter neither continued nor answered"),
    }
}

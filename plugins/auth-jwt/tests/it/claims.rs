//! What a verified token gives the request: metadata and forwarded headers.

use covet_plugin_api::testing::TestRequest;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::*;

#[test]
fn claims_land_in_metadata_strings_as_is_others_as_json() {
    let plugin = plugin(config_with(json!({})));
    let extra = json!({ "roles": ["reader", "writer"], "org": { "id": 7 }, "admin": false });
    let claims = claims(extra);
    let out = send(&plugin, &token(Algorithm::RS256, Some("rsa"), &claims));
    out.assert_continues();
    assert_eq!(out.req.get_metadata("jwt.sub"), Some("alice"));
    assert_eq!(out.req.get_metadata("jwt.exp"), Some(claims["exp"].to_string().as_str()));
    assert_eq!(out.req.get_metadata("jwt.roles"), Some(r#"["reader","writer"]"#));
    assert_eq!(out.req.get_metadata("jwt.org"), Some(r#"{"id":7}"#));
    assert_eq!(out.req.get_metadata("jwt.admin"), Some("false"));
}

#[test]
fn claims_to_metadata_false_leaves_metadata_alone() {
    let plugin = plugin(config_with(json!({ "claims_to_metadata": false })));
    let out = send(&plugin, &token(Algorithm::HS256, Some("hs"), &claims(json!({}))));
    out.assert_continues();
    assert_eq!(out.req.get_metadata("jwt.sub"), None);
}

#[test]
fn forward_claims_set_headers_and_replace_client_values() {
    let plugin = plugin(config_with(json!({ "forward_claims": { "sub": "x-user-id", "tenant": "x-tenant" } })));
    let token = token(Algorithm::ES384, Some("ec384"), &claims(json!({ "tenant": 42 })));
    let req = TestRequest::get("/").header("authorization", &format!("Bearer {token}")).header("x-user-id", "mallory");
    let out = run(&plugin, req);
    out.assert_continues();
    assert_eq!(out.req.get_header("x-user-id"), Some("alice"));
    assert_eq!(out.req.get_header("x-tenant"), Some("42"));
}

#[test]
fn a_forwarded_header_is_removed_when_the_claim_is_absent() {
    let plugin = plugin(config_with(json!({ "forward_claims": { "email": "x-user-email" } })));
    let token = token(Algorithm::HS512, Some("hs"), &claims(json!({})));
    let req = TestRequest::get("/")
        .header("authorization", &format!("Bearer {token}"))
        .header("x-user-email", "spoofed@example.com");
    let out = run(&plugin, req);
    out.assert_continues();
    assert_eq!(out.req.get_header("x-user-email"), None);
}

#[test]
fn required_claims_may_name_any_claim() {
    let plugin = plugin(config_with(json!({ "required_claims": ["exp", "sub", "scope"] })));
    let without = token(Algorithm::HS256, Some("hs"), &claims(json!({})));
    send(&plugin, &without).assert_refused("missing required claim scope");
    let with = token(Algorithm::HS256, Some("hs"), &claims(json!({ "scope": "read" })));
    send(&plugin, &with).assert_continues();
}

#[test]
fn exp_is_required_by_default() {
    let plugin = plugin(config_with(json!({})));
    let forever = token(Algorithm::HS256, Some("hs"), &json!({ "sub": "alice" }));
    send(&plugin, &forever).assert_refused("missing required claim exp");
    let lenient = plugin_without_required_claims();
    send(&lenient, &forever).assert_continues();
}

fn plugin_without_required_claims() -> covet_auth_jwt::AuthJwt {
    plugin(config_with(json!({ "required_claims": [] })))
}

#[test]
fn the_header_and_scheme_are_configurable() {
    let plugin = plugin(config_with(json!({ "header": "X-Auth", "scheme": "JWT" })));
    let token = token(Algorithm::PS384, Some("rsa"), &claims(json!({})));
    run(&plugin, TestRequest::get("/").header("x-auth", &format!("jwt {token}"))).assert_continues();
    let bearer = TestRequest::get("/").header("authorization", &format!("Bearer {token}"));
    run(&plugin, bearer).assert_401("JWT", "missing bearer token");
    let expired = claims(json!({ "exp": now() - 3600 }));
    let stale = crate::support::token(Algorithm::PS384, Some("rsa"), &expired);
    let out = run(&plugin, TestRequest::get("/").header("x-auth", &format!("JWT {stale}")));
    out.assert_401("JWT error=\"invalid_token\", error_description=\"token expired\"", "token expired");
}

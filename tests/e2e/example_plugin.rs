//! The README's example plugin (`examples/require-header`) loaded by the real
//! host: what a plugin author copies must work.

use covet_e2e::{Host, Manifest, Route};
use http::Method;
use serde_json::json;

use crate::common::assert_problem;

#[tokio::test]
async fn the_example_plugin_guards_a_route() {
    let manifest = Manifest::new()
        .plugin("require-key", "require-header", json!({ "header": "X-Api-Key" }))
        .plugin("app", "covet-static-response", json!({ "body": "secret" }))
        .route(Route::new("/private/{*rest}").filters(["require-key"]).handler("app"));
    let host = Host::start(manifest).await;
    let refused = host.http1().get("/private/a").await.unwrap();
    let error = assert_problem(&refused, 403, "FORBIDDEN");
    assert!(error["message"].as_str().unwrap().contains("x-api-key"), "{error}");
    let allowed = host.http2().send(Method::GET, "/private/a", &[("x-api-key", "k")], "").await.unwrap();
    assert_eq!((allowed.status.as_u16(), allowed.text().as_str()), (200, "secret"));
}

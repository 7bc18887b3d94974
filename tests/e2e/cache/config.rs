//! A misconfigured cache is refused at start with a message naming what to
//! fix: an unknown config key, a bad duration, a missing `state` grant for
//! its namespace.

use covet_e2e::{Host, Origin};
use serde_json::json;

use super::{PATIENCE, manifest};

/// Starts a host on `yaml`, which must refuse to start naming every one of `needles`.
fn refused(yaml: String, needles: &[&str]) {
    let exited = Host::builder(yaml).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "covet host started with a bad cache config");
    for needle in needles {
        assert!(exited.stderr.contains(needle), "the refusal lacks {needle:?}:\n{}", exited.stderr);
    }
}

#[tokio::test]
async fn unknown_keys_and_bad_values_are_refused() {
    let origin = Origin::start().await;
    refused(manifest(&origin, json!({ "max_memroy": "1MiB" })), &["max_memroy"]);
    refused(manifest(&origin, json!({ "purge_poll": "soon" })), &["\"soon\""]);
    refused(manifest(&origin, json!({ "rules": [{ "path_prefix": "/x", "tll": "1h" }] })), &["tll"]);
}

#[tokio::test]
async fn the_state_grant_is_required() {
    let origin = Origin::start().await;
    let ungranted =
        manifest(&origin, json!({})).replace("capabilities: { state: [cache] }", "capabilities: { state: [] }");
    assert!(ungranted.contains("state: []"), "{ungranted}");
    refused(ungranted, &["cache", "state"]);
}

use serde_json::json;

use super::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    covet_plugin_api::testing::block_on(f)
}

fn ext(hash: &str) -> Map<String, Value> {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}}).as_object().unwrap().clone()
}

fn apq() -> Persisted {
    Persisted::new(Some(&ApqSetting::On(true)), None, &Host::unavailable(), Path::new("")).unwrap()
}

fn listed(ops: &[&str], with_apq: bool) -> Persisted {
    let config = AllowlistConfig { file: None, operations: ops.iter().map(|s| s.to_string()).collect() };
    let apq = with_apq.then_some(ApqSetting::On(true));
    Persisted::new(apq.as_ref(), Some(&config), &Host::unavailable(), Path::new("")).unwrap()
}

const Q: &str = "{ a }";

#[test]
fn sha256_is_lower_hex() {
    assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn apq_miss_then_register_then_hit() {
    let p = apq();
    let hash = sha256_hex(Q);
    let miss = block_on(p.resolve(None, &ext(&hash))).unwrap_err();
    assert_eq!((miss.code, miss.message.as_str()), ("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"));
    let register = block_on(p.resolve(Some(Q), &ext(&hash.to_uppercase()))).unwrap();
    assert_eq!(register.outcome, Outcome::Register(hash.clone()));
    block_on(p.register(&hash, Q));
    let hit = block_on(p.resolve(None, &ext(&hash))).unwrap();
    assert_eq!((hit.query.as_ref(), hit.outcome), (Q, Outcome::Hit));
}

#[test]
fn a_hash_that_is_not_the_querys_is_refused() {
    let wrong = sha256_hex("{ b }");
    let refusal = block_on(apq().resolve(Some(Q), &ext(&wrong))).unwrap_err();
    assert_eq!(refusal.code, "PROVIDED_SHA_DOESNT_MATCH");
}

#[test]
fn malformed_extensions_and_hash_only_without_apq_are_refused() {
    let p = apq();
    let bad = json!({"persistedQuery": {"version": 2, "sha256Hash": sha256_hex(Q)}});
    assert_eq!(block_on(p.resolve(None, bad.as_object().unwrap())).unwrap_err().code, "PERSISTED_QUERY_INVALID");
    let short = json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}});
    assert_eq!(block_on(p.resolve(None, short.as_object().unwrap())).unwrap_err().code, "PERSISTED_QUERY_INVALID");
    let off = Persisted::default();
    assert_eq!(block_on(off.resolve(None, &ext(&sha256_hex(Q)))).unwrap_err().code, "PERSISTED_QUERY_NOT_SUPPORTED");
    assert_eq!(block_on(off.resolve(Some(Q), &Map::new())).unwrap().outcome, Outcome::Plain);
}

#[test]
fn the_allowlist_runs_listed_text_and_hashes_and_refuses_the_rest() {
    let other = "query Other { b }";
    let p = listed(&[Q, &sha256_hex(other)], false);
    assert_eq!(block_on(p.resolve(Some(Q), &Map::new())).unwrap().outcome, Outcome::Plain);
    let by_hash = block_on(p.resolve(None, &ext(&sha256_hex(Q)))).unwrap();
    assert_eq!((by_hash.query.as_ref(), by_hash.outcome), (Q, Outcome::Listed));
    assert_eq!(block_on(p.resolve(Some(other), &Map::new())).unwrap().outcome, Outcome::Plain);
    let refused = block_on(p.resolve(Some("{ c }"), &Map::new())).unwrap_err();
    assert_eq!(refused.code, "PERSISTED_QUERY_NOT_ALLOWED");
    assert_eq!(refused.extensions()["sha256Hash"], sha256_hex("{ c }"));
    let unknown = block_on(p.resolve(None, &ext(&sha256_hex("{ c }")))).unwrap_err();
    assert_eq!(unknown.code, "PERSISTED_QUERY_NOT_ALLOWED");
    // A listed hash without its document needs the text (APQ is off).
    assert_eq!(block_on(p.resolve(None, &ext(&sha256_hex(other)))).unwrap_err().code, "PERSISTED_QUERY_NOT_SUPPORTED");
}

#[test]
fn with_an_allowlist_apq_cannot_register_an_unlisted_query() {
    let p = listed(&[Q], true);
    let text = "{ evil }";
    let refusal = block_on(p.resolve(Some(text), &ext(&sha256_hex(text)))).unwrap_err();
    assert_eq!(refusal.code, "PERSISTED_QUERY_NOT_ALLOWED");
}

#[test]
fn allowlist_files_are_lists_or_apollo_manifests() {
    let dir = std::env::temp_dir().join(format!("covet-gql-allow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({"format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": sha256_hex(Q), "name": "A", "type": "query", "body": Q}]});
    std::fs::write(dir.join("m.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("l.json"), json!([sha256_hex(Q)]).to_string()).unwrap();
    let bad = json!({"operations": [{"id": "00", "body": Q}]});
    std::fs::write(dir.join("bad.json"), bad.to_string()).unwrap();
    for (file, ok) in [("m.json", true), ("l.json", true), ("bad.json", false), ("none.json", false)] {
        let config = AllowlistConfig { file: Some(file.into()), operations: vec![] };
        let loaded = Persisted::new(None, Some(&config), &Host::unavailable(), &dir);
        assert_eq!(loaded.is_ok(), ok, "{file}: {:?}", loaded.err());
    }
    let config = AllowlistConfig { file: Some("bad.json".into()), operations: vec![] };
    let err = Persisted::new(None, Some(&config), &Host::unavailable(), &dir).err().unwrap();
    assert!(err.contains("bad.json") && err.contains("not the SHA-256"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apq_entries_expire_and_the_oldest_go_first() {
    let config = ApqConfig { ttl: Some("1ms".into()), state: None, max_entries: Some(1) };
    let p = Persisted::new(Some(&ApqSetting::With(config)), None, &Host::unavailable(), Path::new("")).unwrap();
    let (a, b) = ("{ a }", "{ b }");
    block_on(p.register(&sha256_hex(a), a));
    block_on(p.register(&sha256_hex(b), b));
    assert_eq!(block_on(p.resolve(None, &ext(&sha256_hex(a)))).unwrap_err().code, "PERSISTED_QUERY_NOT_FOUND");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(block_on(p.resolve(None, &ext(&sha256_hex(b)))).unwrap_err().code, "PERSISTED_QUERY_NOT_FOUND");
}

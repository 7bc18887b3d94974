//! Unit tests of template parsing and rendering.

use serde_json::{Value, json};

use super::*;

struct Vars(Value);

impl Env for Vars {
    fn lookup(&self, source: &Source) -> Option<Value> {
        let (root, path) = match source {
            Source::Args(p) => ("args", p.clone()),
            Source::Parent(p) => ("parent", p.clone()),
            Source::Meta(k) => ("meta", vec![k.clone()]),
            Source::Header(h) => ("header", vec![h.clone()]),
            Source::BatchKeys => return None,
        };
        walk(self.0.get(root)?, &path).filter(|v| !v.is_null()).cloned()
    }
}

#[test]
fn placeholders_render_encoded_for_their_place() {
    let env = Vars(json!({"args": {"id": "a b/c", "n": 7, "input": {"name": "x"}}, "meta": {"jwt.sub": "alice"}}));
    let t = Template::parse("/users/{args.id}?n={args.n}").unwrap();
    assert_eq!(t.render(&env, Encoding::Url).as_deref(), Some("/users/a%20b%2Fc?n=7"));
    let t = Template::parse(r#"{"name": {args.input.name}, "who": {meta.jwt.sub}}"#).unwrap();
    assert_eq!(t.render(&env, Encoding::Json).as_deref(), Some(r#"{"name": "x", "who": "alice"}"#));
    let t = Template::parse("Bearer {meta.jwt.sub}").unwrap();
    assert_eq!(t.render(&env, Encoding::Raw).as_deref(), Some("Bearer alice"));
}

#[test]
fn a_missing_value_renders_nothing() {
    let env = Vars(json!({"args": {"id": null}}));
    assert_eq!(Template::parse("/u/{args.id}").unwrap().render(&env, Encoding::Url), None);
    assert_eq!(Template::parse("/u/{parent.id}").unwrap().render(&env, Encoding::Url), None);
}

#[test]
fn bad_placeholders_are_refused_and_other_braces_kept() {
    assert!(Template::parse("/u/{args.}").unwrap_err().contains("{args.}"));
    assert!(Template::parse("/u/{meta}").is_err());
    assert!(Template::parse("/u/{batch.key}").is_err());
    let t = Template::parse("{not a placeholder} {x}").unwrap();
    assert_eq!(t.render(&Vars(json!({})), Encoding::Raw).as_deref(), Some("{not a placeholder} {x}"));
    assert_eq!(t.sources().count(), 0);
}

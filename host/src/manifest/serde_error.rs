//! Turns a serde-saphyr error (YAML syntax, unknown key, wrong type, bad
//! size or duration, missing key, duplicate key) into a [`Diagnostic`] with
//! the parser's location, the key it is about and, where it helps, a
//! suggestion (`did you mean "config"?`).

use serde_saphyr::Error;
use serde_saphyr::MessageFormatter as _;

use super::source_index::{Node, SourceIndex, join};
use super::suggest::{did_you_mean, quoted_list};
use super::units::HELP_MARK;
use super::{Diagnostic, Loc};

/// The diagnostic for a manifest `text` that serde could not read.
pub fn diagnose(error: &Error, text: &str) -> Diagnostic {
    let index = SourceIndex::new(text);
    let loc = error.location().as_ref().and_then(Loc::from_yaml);
    let node = loc.as_ref().and_then(|loc| index.at(loc.line, loc.column));
    let key = node.map(|node| node.path.clone()).unwrap_or_default();
    let mut diagnostic = Diagnostic {
        loc,
        key,
        message: String::new(),
        help: None,
    };
    describe(original(error), node, &index, &mut diagnostic);
    diagnostic
}

/// The error itself, without the alias or snippet wrappers.
fn original(mut error: &Error) -> &Error {
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } =
        error
    {
        error = inner;
    }
    error
}

/// Fills in message, help and (for a missing key) the key.
fn describe(error: &Error, node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    match error {
        Error::SerdeUnknownField {
            field, expected, ..
        } => {
            d.message = format!("unknown key \"{field}\"");
            d.help = Some(choices(field, expected, "valid keys here"));
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            d.message = format!("unknown value \"{variant}\"");
            d.help = Some(choices(variant, expected, "valid values"));
        }
        Error::SerdeMissingField { field, .. } => missing(field, node, index, d),
        Error::DuplicateMappingKey { key, .. } => duplicate(key.as_deref(), node, index, d),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            d.message = format!("invalid type: {unexpected}, expected {}", plain(expected));
            point_at_value(node, index, d);
        }
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            d.message = format!("invalid value: {unexpected}, expected {}", plain(expected));
            point_at_value(node, index, d);
        }
        Error::Unexpected { expected, .. } => {
            d.message = match *expected {
                "sequence start" => "expected a list here".to_owned(),
                "mapping start" => "expected a mapping (`key: value` lines) here".to_owned(),
                other => format!("expected {other}"),
            };
        }
        Error::ExternalMessage { msg, .. } => {
            d.message = format!("invalid YAML: {msg}");
            d.help = Some(SYNTAX_HELP.to_owned());
        }
        Error::Message { msg, .. } => {
            let (message, help) = msg.split_once(HELP_MARK).unwrap_or((msg, ""));
            d.message = message.to_owned();
            d.help = (!help.is_empty()).then(|| help.to_owned());
        }
        Error::Eof { .. } if index.is_empty() => {
            d.message = "the manifest is empty".to_owned();
            d.help = Some("it needs at least `listen:` with one address".to_owned());
        }
        other => {
            d.message = serde_saphyr::UserMessageFormatter
                .format_message(other)
                .into_owned();
        }
    }
}

/// `did you mean "x"?` when one choice is close, else the list of choices.
fn choices(input: &str, expected: &[&'static str], what: &str) -> String {
    did_you_mean(input, expected.iter().copied())
        .unwrap_or_else(|| format!("{what}: {}", quoted_list(expected.iter().copied())))
}

const SYNTAX_HELP: &str = "the problem is here or just before: look for an unclosed \
    `[`, `{` or quote, or a line indented differently from its neighbours";

/// A missing key: named where it belongs, pointing at the mapping that
/// lacks it (its key, when it has one). Serde points at one of its keys.
fn missing(field: &str, node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    d.message = format!("missing key \"{field}\"");
    let Some(node) = node else {
        d.key = field.to_owned();
        return;
    };
    let mapping = node.key_of.as_deref().unwrap_or(&node.path);
    d.key = join(mapping, field);
    let owner = index
        .first_key(mapping)
        .or_else(|| index.first_value(mapping));
    if let Some(owner) = owner {
        d.loc = Some(owner.loc());
    }
}

/// Serde may point at the key of a bad value; point at the value instead.
fn point_at_value(node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    if let Some(value) = node
        .filter(|node| node.key_of.is_some())
        .and_then(|key| index.first_value(&key.path))
    {
        d.loc = Some(value.loc());
    }
}

/// A key written twice; plugin names get their own wording.
fn duplicate(key: Option<&str>, node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    let key = key.unwrap_or("?");
    let in_plugins = node.and_then(|node| node.key_of.as_deref()) == Some("plugins");
    d.message = match in_plugins {
        true => format!("plugin \"{key}\" is defined twice"),
        false => format!("duplicate key \"{key}\""),
    };
    let first = index.first_key(&d.key);
    let first = first.filter(|first| Some(first.loc()) != d.loc);
    d.help = Some(match (first, in_plugins) {
        (Some(first), true) => format!(
            "the first definition is at line {}, column {}; plugin names must be unique",
            first.line, first.column
        ),
        (Some(first), false) => {
            format!(
                "it is first written at line {}, column {}; keep one",
                first.line, first.column
            )
        }
        (None, _) => "a key may appear only once in a mapping; keep one".to_owned(),
    });
}

/// Serde's names for what it expected, in manifest words.
fn plain(expected: &str) -> String {
    if expected.starts_with("struct ") {
        return "a mapping".to_owned();
    }
    match expected {
        "a nonzero usize" | "a nonzero u32" => "a whole number above 0".to_owned(),
        "usize" | "u32" | "u64" => "a whole number".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnose_text(text: &str) -> Diagnostic {
        match super::super::raw::from_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(error) => diagnose(&error, text),
        }
    }

    #[test]
    fn an_unknown_key_suggests_the_close_one() {
        let d = diagnose_text(
            "listen: []\nplugins:\n  jwt:\n    kind: native\n    path: a\n    confg: {}\n",
        );
        assert_eq!(d.message, "unknown key \"confg\"");
        assert_eq!(d.loc, Some(Loc { line: 6, column: 5 }));
        assert_eq!(d.key, "plugins.jwt.confg");
        assert_eq!(d.help.as_deref(), Some("did you mean \"config\"?"));
    }

    #[test]
    fn an_unknown_key_far_from_all_lists_them() {
        let d = diagnose_text("listen: []\nbanana: 1\n");
        assert_eq!(
            d.help.as_deref(),
            Some(
                "valid keys here: \"listen\", \"limits\", \"log\", \"plugins\", \"routes\", \"admin\", \"python\", \"io\", \"workers\", \"processes\", \"services\", \"upstreams\", \"telemetry\""
            )
        );
    }

    #[test]
    fn a_missing_key_is_named_where_it_belongs() {
        let d = diagnose_text("listen: []\nroutes:\n  - path: /x\n");
        assert_eq!(d.message, "missing key \"handler\"");
        assert_eq!(d.key, "routes[0].handler");
    }

    #[test]
    fn a_missing_key_points_at_the_mapping_that_lacks_it() {
        let d = diagnose_text("listen: []\nplugins:\n  jwt:\n    path: a.so\n");
        assert_eq!(d.key, "plugins.jwt.kind");
        assert_eq!(d.loc, Some(Loc { line: 3, column: 3 }));
    }

    #[test]
    fn a_bad_value_is_pointed_at_not_its_key() {
        let d = diagnose_text("listen: []\nlimits:\n  max_headers: 0\n");
        assert_eq!(
            d.loc,
            Some(Loc {
                line: 3,
                column: 16
            })
        );
        assert_eq!(
            d.message,
            "invalid value: integer `0`, expected a whole number above 0"
        );
    }

    #[test]
    fn a_bad_size_keeps_its_help() {
        let d = diagnose_text("listen: []\nlimits:\n  max_body: 1XB\n");
        assert_eq!(d.message, "invalid size \"1XB\": unknown unit \"XB\"");
        assert_eq!(
            d.loc,
            Some(Loc {
                line: 3,
                column: 13
            })
        );
        assert_eq!(d.key, "limits.max_body");
        assert!(d.help.is_some_and(|help| help.contains("KiB")));
    }

    #[test]
    fn a_duplicate_plugin_points_at_the_first() {
        let text =
            "listen: []\nplugins:\n  a: {kind: native, path: x}\n  a: {kind: native, path: y}\n";
        let d = diagnose_text(text);
        assert_eq!(d.message, "plugin \"a\" is defined twice");
        assert_eq!(d.loc, Some(Loc { line: 4, column: 3 }));
        assert_eq!(
            d.help.as_deref(),
            Some("the first definition is at line 3, column 3; plugin names must be unique")
        );
    }
}

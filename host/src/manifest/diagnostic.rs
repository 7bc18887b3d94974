//! Manifest problems and how they are shown: one rustc-like block per
//! problem (message, file:line:column, the source line with the offending
//! token underlined, its key and a help line), then a count.
//!
//! ```text
//! error: unknown plugin "jtw" in filters
//!   --> tests/manifest/invalid/unknown_filter.yaml:12:15
//!    |
//! 12 |     filters: [jtw]
//!    |               ^^^
//!    = key: routes[0].filters[0]
//!    = help: did you mean "jwt"?
//!
//! error: manifest tests/manifest/invalid/unknown_filter.yaml has 1 error
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use super::Loc;
use super::source_index::SourceIndex;

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Where it is, when known.
    pub loc: Option<Loc>,
    /// The offending key, e.g. `routes[1].filters[0]`; empty when none applies.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// A manifest that cannot be used, with every problem found in it.
#[derive(Clone, Debug)]
pub struct ManifestError {
    /// The manifest file, as given.
    pub file: PathBuf,
    /// Its text, when it could be read (to show the offending lines).
    pub source_text: Option<String>,
    /// The problems, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestError {
    /// An error with one problem, e.g. a plugin that fails to load.
    pub fn single(file: &Path, source_text: Option<String>, diagnostic: Diagnostic) -> Self {
        ManifestError {
            file: file.to_path_buf(),
            source_text,
            diagnostics: vec![diagnostic],
        }
    }
}

impl std::error::Error for ManifestError {}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self
            .source_text
            .as_deref()
            .map(SourceIndex::new)
            .unwrap_or_default();
        for diagnostic in &self.diagnostics {
            let block = Block {
                error: self,
                index: &index,
                diagnostic,
            };
            writeln!(f, "{block}")?;
        }
        let count = self.diagnostics.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(
            f,
            "error: manifest {} has {count} error{plural}",
            self.file.display()
        )
    }
}

/// One diagnostic, rendered.
struct Block<'a> {
    error: &'a ManifestError,
    index: &'a SourceIndex,
    diagnostic: &'a Diagnostic,
}

impl fmt::Display for Block<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        let file = self.error.file.display();
        writeln!(f, "error: {}", d.message)?;
        let gutter = match &d.loc {
            Some(loc) => {
                let gutter = " ".repeat(loc.line.to_string().len());
                writeln!(f, "{gutter}--> {file}:{}:{}", loc.line, loc.column)?;
                f.write_str(&self.snippet(loc, &gutter))?;
                gutter
            }
            None => {
                writeln!(f, " --> {file}")?;
                " ".to_owned()
            }
        };
        if !d.key.is_empty() {
            writeln!(f, "{gutter} = key: {}", d.key)?;
        }
        if let Some(help) = &d.help {
            writeln!(f, "{gutter} = help: {help}")?;
        }
        Ok(())
    }
}

impl Block<'_> {
    /// The source line with carets under the offending token; empty when the
    /// text or the line is not available.
    fn snippet(&self, loc: &Loc, gutter: &str) -> String {
        let line = self
            .error
            .source_text
            .as_deref()
            .and_then(|text| nth_line(text, loc.line));
        let Some(line) = line else {
            return String::new();
        };
        let line = line.replace('\t', " ");
        let len = self.underline_len(loc, &line);
        let pad = " ".repeat(loc.column.saturating_sub(1) as usize);
        let mut out = String::new();
        let _ = writeln!(out, "{gutter} |");
        let _ = writeln!(out, "{} | {}", loc.line, line.trim_end());
        let _ = writeln!(out, "{gutter} | {pad}{}", "^".repeat(len));
        out
    }

    /// The length of the token at `loc` when it is the diagnostic's key (a
    /// missing key gets one caret at its mapping) and fits the line, else 1.
    fn underline_len(&self, loc: &Loc, line: &str) -> usize {
        let rest = line
            .chars()
            .count()
            .saturating_sub(loc.column.saturating_sub(1) as usize);
        let node = self
            .index
            .at_path(loc.line, loc.column, &self.diagnostic.key);
        let known = node.and_then(|node| node.len);
        match known {
            Some(len) if len > 0 && len as usize <= rest => len as usize,
            _ => 1,
        }
    }
}

/// Line `n` (1-based) of `text`, with lines broken where YAML breaks them
/// (LF, CRLF and a lone CR), so `n` is the parser's line number.
/// As [`str::lines`], no line after a final break and none in an empty text.
fn nth_line(text: &str, n: u64) -> Option<&str> {
    let n = usize::try_from(n).ok()?.checked_sub(1)?;
    let mut rest = text;
    let mut lines = std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // memchr2 rather than `find(['\n', '\r'])`: the char search cost
        // more than the rest of a refusal's report for a long manifest.
        let end = memchr::memchr2(b'\n', b'\r', rest.as_bytes()).unwrap_or(rest.len());
        let line = &rest[..end];
        let next = match &rest[end..] {
            r if r.starts_with("\r\n") => end + 2,
            "" => end,
            _ => end + 1,
        };
        rest = &rest[next..];
        Some(line)
    });
    lines.nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(diagnostics: Vec<Diagnostic>) -> ManifestError {
        let text = "routes:\n  - path: /x\n    filters: [jtw]\n    handler: users\n";
        ManifestError {
            file: PathBuf::from("m.yaml"),
            source_text: Some(text.to_owned()),
            diagnostics,
        }
    }

    fn unknown_filter() -> Diagnostic {
        Diagnostic {
            loc: Some(Loc {
                line: 3,
                column: 15,
            }),
            key: "routes[0].filters[0]".to_owned(),
            message: "unknown plugin \"jtw\" in filters".to_owned(),
            help: Some("did you mean \"jwt\"?".to_owned()),
        }
    }

    #[test]
    fn a_diagnostic_shows_the_line_and_underlines_the_token() {
        let expected = "\
error: unknown plugin \"jtw\" in filters
 --> m.yaml:3:15
  |
3 |     filters: [jtw]
  |               ^^^
  = key: routes[0].filters[0]
  = help: did you mean \"jwt\"?

error: manifest m.yaml has 1 error";
        assert_eq!(error(vec![unknown_filter()]).to_string(), expected);
    }

    #[test]
    fn an_unknown_token_gets_one_caret_and_no_help_line() {
        let diagnostic = Diagnostic {
            loc: Some(Loc { line: 2, column: 3 }),
            key: String::new(),
            help: None,
            ..unknown_filter()
        };
        let text = error(vec![diagnostic.clone(), diagnostic]).to_string();
        assert!(
            text.contains("2 |   - path: /x\n  |   ^\n\nerror"),
            "{text}"
        );
        assert!(text.ends_with("has 2 errors"), "{text}");
    }

    #[test]
    fn a_diagnostic_without_location_names_the_file() {
        let diagnostic = Diagnostic {
            loc: None,
            ..unknown_filter()
        };
        let text = ManifestError::single(Path::new("m.yaml"), None, diagnostic).to_string();
        assert!(
            text.starts_with("error: unknown plugin \"jtw\" in filters\n --> m.yaml\n  = key:"),
            "{text}"
        );
    }

    #[test]
    fn the_excerpt_is_the_line_the_parser_counted_past_lone_carriage_returns() {
        // A lone CR breaks a line in YAML (found by the manifest fuzz target):
        // the excerpt is the parser's line 3, not the third LF-ended one.
        let text = "listen:\r  - addr: 127.0.0.1:0\rbogus: 1\n";
        let report = crate::manifest::Manifest::parse(std::path::Path::new("m.yaml"), text).unwrap_err().to_string();
        assert!(report.contains("m.yaml:3:1\n"), "{report}");
        assert!(report.contains("3 | bogus: 1\n"), "{report}");
    }

    #[test]
    fn lines_break_as_yaml_breaks_them_with_nothing_past_the_last_break() {
        assert_eq!(nth_line("", 1), None);
        assert_eq!(nth_line("a\n", 1), Some("a"));
        assert_eq!(nth_line("a\n", 2), None);
        assert_eq!(nth_line("a\r\nb\rc\n\nd", 2), Some("b"));
        assert_eq!(nth_line("a\r\nb\rc\n\nd", 3), Some("c"));
        assert_eq!(nth_line("a\r\nb\rc\n\nd", 4), Some(""));
        assert_eq!(nth_line("a\r\nb\rc\n\nd", 5), Some("d"));
        assert_eq!(nth_line("a\r", 2), None);
        assert_eq!(nth_line("a", 0), None);
    }
}

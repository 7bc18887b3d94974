//! Where each YAML node sits in the manifest text, and its key path.
//!
//! Serde's errors carry a line and column but not the key they are about;
//! this index walks the YAML events once and records, for every node, where
//! it starts, how long it is (for scalars on one line) and its key path
//! (`routes[0].filters[1]`). Diagnostics use it to name the offending key and
//! to underline the whole offending token.

use serde_saphyr::granit_parser::{Event, Parser};

use super::Loc;

/// One YAML node: a key, a scalar, a mapping or a sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// Length in characters, for a scalar written on one line.
    pub len: Option<u64>,
    /// Key path: `plugins.jwt.path`, `routes[0].filters[1]`; empty for the root.
    pub path: String,
    /// For a mapping key: the path of the mapping it belongs to.
    pub key_of: Option<String>,
}

impl Node {
    /// Where the node starts.
    pub fn loc(&self) -> Loc {
        Loc {
            line: self.line,
            column: self.column,
        }
    }
}

/// The nodes of one manifest text, in document order.
#[derive(Debug, Default)]
pub struct SourceIndex {
    nodes: Vec<Node>,
}

/// A mapping or sequence being walked.
enum Frame {
    Sequence {
        path: String,
        next: usize,
    },
    Mapping {
        path: String,
        value_path: Option<String>,
    },
}

impl SourceIndex {
    /// Indexes `text`. A syntax error ends the walk; what came before stays.
    pub fn new(text: &str) -> SourceIndex {
        let mut index = SourceIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let (start, end) = (span.start, span.end);
            let len = (start.line() == end.line()).then(|| (end.index() - start.index()) as u64);
            match event {
                Event::Scalar(value, ..) => index.scalar(&mut stack, &value, start, len),
                Event::Alias(_) => index.scalar(&mut stack, "*", start, len),
                Event::SequenceStart(..) => {
                    let path = index.place(&mut stack, None, start, None);
                    stack.push(Frame::Sequence { path, next: 0 });
                }
                Event::MappingStart(..) => {
                    let path = index.place(&mut stack, None, start, None);
                    stack.push(Frame::Mapping {
                        path,
                        value_path: None,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        index
    }

    fn scalar(&mut self, stack: &mut [Frame], text: &str, at: Marker, len: Option<u64>) {
        self.place(stack, Some(text), at, len);
    }

    /// Records a node at `at` under the innermost open collection; returns its path.
    fn place(
        &mut self,
        stack: &mut [Frame],
        text: Option<&str>,
        at: Marker,
        len: Option<u64>,
    ) -> String {
        let (path, key_of) = match stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Sequence { path, next }) => {
                *next += 1;
                (format!("{path}[{}]", *next - 1), None)
            }
            Some(Frame::Mapping { path, value_path }) => match value_path.take() {
                Some(value_path) => (value_path, None),
                None => {
                    let key_path = join(path, text.unwrap_or("?"));
                    *value_path = Some(key_path.clone());
                    (key_path, Some(path.clone()))
                }
            },
        };
        let node = Node {
            line: at.line() as u64,
            column: at.col() as u64 + 1,
            len,
            path,
            key_of,
        };
        self.nodes.push(node.clone());
        node.path
    }

    /// Whether the text holds no YAML node at all (empty or only comments).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The innermost node that starts at `line`:`column`.
    pub fn at(&self, line: u64, column: u64) -> Option<&Node> {
        self.nodes
            .iter()
            .rev()
            .find(|node| node.line == line && node.column == column)
    }

    /// The node with key path `path` that starts at `line`:`column`, if any.
    pub fn at_path(&self, line: u64, column: u64, path: &str) -> Option<&Node> {
        let starts_here = |node: &&Node| node.line == line && node.column == column;
        self.nodes
            .iter()
            .filter(starts_here)
            .find(|node| node.path == path)
    }

    /// The first mapping key with this path (for "first defined here").
    pub fn first_key(&self, path: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|node| node.key_of.is_some() && node.path == path)
    }

    /// The first value (not key) with this path.
    pub fn first_value(&self, path: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|node| node.key_of.is_none() && node.path == path)
    }
}

type Marker = serde_saphyr::granit_parser::Marker;

/// Appends a mapping key to a path: `plugins` + `jwt` = `plugins.jwt`.
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
listen:
  - addr: 127.0.0.1:8080
plugins:
  jwt: { kind: native, path: \"a.so\" }
routes:
  - path: /x
    filters: [jwt, lim]
";

    fn path_at(line: u64, column: u64) -> String {
        SourceIndex::new(TEXT)
            .at(line, column)
            .map(|n| n.path.clone())
            .unwrap_or_default()
    }

    #[test]
    fn paths_follow_mappings_and_sequences() {
        assert_eq!(path_at(2, 5), "listen[0].addr");
        assert_eq!(path_at(2, 11), "listen[0].addr");
        assert_eq!(path_at(4, 3), "plugins.jwt");
        assert_eq!(path_at(4, 30), "plugins.jwt.path");
        assert_eq!(path_at(7, 20), "routes[0].filters[1]");
    }

    #[test]
    fn scalars_know_their_length_including_quotes() {
        let index = SourceIndex::new(TEXT);
        assert_eq!(index.at(4, 30).and_then(|n| n.len), Some(6));
        assert_eq!(index.at(2, 11).and_then(|n| n.len), Some(14));
    }

    #[test]
    fn keys_know_their_mapping() {
        let index = SourceIndex::new(TEXT);
        let key = index.at(4, 3).expect("the jwt key");
        assert_eq!(key.key_of.as_deref(), Some("plugins"));
        assert_eq!(index.first_key("plugins.jwt").map(|n| n.line), Some(4));
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        assert_eq!(join("plugins", "a.b"), "plugins[\"a.b\"]");
        assert_eq!(join("", "listen"), "listen");
    }
}

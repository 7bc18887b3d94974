//! Header name and value checks (RFC 9110 §5.1 and §5.5) for plugins to run
//! in `init`, so a bad manifest is refused before the plugin takes traffic,
//! with a message saying what is wrong and how to fix it.

/// The header names that are always hop-by-hop (RFC 9110 §7.6.1, plus the
/// legacy `keep-alive` and `proxy-connection`), lower-case: a proxy does not
/// forward them and a cache does not store them. Names listed in a
/// `connection` header are hop-by-hop too.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether `name` (lower-case) is one of [`HOP_BY_HOP`].
pub fn is_hop_by_hop(name: &str) -> bool {
    // A length check first: most names are longer than any of these.
    name.len() <= 19 && HOP_BY_HOP.contains(&name)
}

/// The characters besides letters and digits that a header name may use.
const TOKEN_PUNCTUATION: &str = "!#$%&'*+-.^_`|~";

/// Checks a header name and returns it lower-cased (the form covet sends).
pub fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a header name is empty; name the header, e.g. `x-served-by`".to_string());
    }
    match name.chars().find(|c| !is_token_char(*c)) {
        Some(bad) => Err(format!(
            "header name `{name}` contains {}; header names may only use letters, digits and {TOKEN_PUNCTUATION}",
            describe(bad)
        )),
        None => Ok(name.to_ascii_lowercase()),
    }
}

/// Checks a header value: no control characters (tab excepted), no
/// whitespace at either end (HTTP strips it, so it would be silently lost).
pub fn header_value(name: &str, value: &str) -> Result<(), String> {
    if let Some(bad) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!(
            "the value of header `{name}` contains {}; header values cannot hold control characters or line breaks",
            describe(bad)
        ));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(format!(
            "the value of header `{name}` starts or ends with whitespace; remove it (HTTP would drop it)"
        ));
    }
    Ok(())
}

/// Whether `text` is a non-empty RFC 9110 token (what header names and auth
/// schemes are made of).
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_token_char)
}

fn is_token_char(c: char) -> bool {
    // A byte search: `str::contains(char)` builds a searcher per call.
    c.is_ascii_alphanumeric() || (c.is_ascii() && TOKEN_PUNCTUATION.as_bytes().contains(&(c as u8)))
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        '\t' => "a tab".to_string(),
        '\r' | '\n' => "a line break".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_tokens() {
        assert_eq!(header_name("X-Served-By").unwrap(), "x-served-by");
        assert!(header_name("x served").unwrap_err().contains("a space"));
        assert!(header_name("x:y").unwrap_err().contains("`:`"));
        assert!(header_name("").is_err());
    }

    #[test]
    fn tokens_are_non_empty_tchar_runs() {
        assert!(is_token("Bearer") && is_token("x-api_key.v1"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a:b"));
    }

    #[test]
    fn values_refuse_control_characters_and_edge_whitespace() {
        assert!(header_value("x", "a b\tc ü").is_ok());
        assert!(header_value("x", "a\r\nb").unwrap_err().contains("line break"));
        assert!(header_value("x", " a").unwrap_err().contains("whitespace"));
    }
}

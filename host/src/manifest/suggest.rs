//! "Did you mean" for misspelt names: keys, plugin names, methods, values.

/// The candidate closest to `input`, if one is close enough to be a typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (similarity(input, candidate), candidate))
        .filter(|&(score, _)| score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// Jaro-Winkler, but one edit in a short word always counts as close.
fn similarity(input: &str, candidate: &str) -> f64 {
    if input.chars().count() > 2 && strsim::damerau_levenshtein(input, candidate) <= 1 {
        return 1.0;
    }
    strsim::jaro_winkler(input, candidate)
}

/// `did you mean "x"?` when a candidate is close.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(input, candidates).map(|name| format!("did you mean \"{name}\"?"))
}

/// `"a", "b", "c"`.
pub fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names
        .into_iter()
        .map(|name| format!("\"{name}\""))
        .collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        assert_eq!(closest("jtw", ["users", "jwt", "limiter"]), Some("jwt"));
        assert_eq!(closest("confg", ["kind", "path", "config"]), Some("config"));
        assert_eq!(closest("GTE", ["GET", "PUT", "POST"]), Some("GET"));
        assert_eq!(closest("limitr", ["limiter", "jwt"]), Some("limiter"));
    }

    #[test]
    fn distant_names_are_not_suggested() {
        assert_eq!(closest("banana", ["jwt", "users"]), None);
        assert_eq!(closest("x", std::iter::empty()), None);
    }

    #[test]
    fn the_hint_is_a_question() {
        assert_eq!(
            did_you_mean("jtw", ["jwt"]).as_deref(),
            Some("did you mean \"jwt\"?")
        );
        assert_eq!(quoted_list(["a", "b"]), "\"a\", \"b\"");
    }
}

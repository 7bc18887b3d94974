//! `processes:`: how many host processes serve the manifest. One (the
//! default) is a single host; more start a supervisor that runs that many
//! child hosts on the same listeners ([`crate::supervisor`]), so Python
//! routes, which one interpreter serves on one core, use every core.

use std::num::NonZeroUsize;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

/// The most processes a manifest may ask for.
pub const MAX_PROCESSES: usize = 256;

/// `processes:` as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Processes {
    /// One host process (the default).
    #[default]
    One,
    /// Exactly this many (1 to 256).
    Count(NonZeroUsize),
    /// `auto`: one per core the process may run on (honours `taskset` and cgroup CPU sets).
    Auto,
}

impl JsonSchema for Processes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Processes".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": MAX_PROCESSES },
                { "const": "auto" }
            ]
        })
    }
}

impl Processes {
    /// How many processes to run, `auto` resolved on this machine.
    pub fn count(self) -> usize {
        match self {
            Processes::One => 1,
            Processes::Count(n) => n.get(),
            Processes::Auto => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl<'de> Deserialize<'de> for Processes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Visitor)
    }
}

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = Processes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a number of processes from 1 to {MAX_PROCESSES}, or `auto` (one per core)")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Processes, E> {
        let count = usize::try_from(n).ok().filter(|n| *n <= MAX_PROCESSES).and_then(NonZeroUsize::new);
        count.map(Processes::Count).ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Processes, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Processes, E> {
        match text {
            "auto" => Ok(Processes::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Processes, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_count_or_auto() {
        assert_eq!(parse("3").unwrap(), Processes::Count(NonZeroUsize::new(3).unwrap()));
        assert_eq!(parse("3").unwrap().count(), 3);
        assert_eq!(parse("auto").unwrap(), Processes::Auto);
        assert!(parse("auto").unwrap().count() >= 1);
        assert_eq!(Processes::default().count(), 1);
    }

    #[test]
    fn zero_negative_too_many_and_words_are_refused_with_the_valid_range() {
        for bad in ["0", "-2", "257", "many", "1.5"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("from 1 to 256, or `auto`"), "{bad}: {error}");
        }
    }
}

//! Sizes and durations as people write them in a manifest: `1MiB`, `512KiB`,
//! `10MB` or a plain number of bytes; `10s`, `500ms`, `1m 30s`.
//!
//! Both newtypes deserialise from the YAML value directly, so a bad value is
//! reported by serde at its own line and column. Their error messages carry a
//! help text after [`HELP_MARK`], which `serde_error` splits off into the
//! diagnostic's `help`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Separates a unit error's message from its help text.
pub const HELP_MARK: &str = "\n= help: ";

/// The size units, with their factor in bytes.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1 << 10),
    ("MB", 1000 * 1000),
    ("MiB", 1 << 20),
    ("GB", 1000 * 1000 * 1000),
    ("GiB", 1 << 30),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("TiB", 1 << 40),
];

/// A size in bytes: an integer, or a whole number with a unit (`512KiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A span of time in humantime syntax (`10s`, `500ms`, `1m 30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// Why a size or duration was refused, and how to write it instead.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitError {
    /// What is wrong.
    pub message: String,
    /// How to write it.
    pub help: &'static str,
}

const SIZE_HELP: &str = "write a number of bytes, or a whole number with a unit: \
    B, KB, KiB, MB, MiB, GB, GiB, TB, TiB (e.g. 512KiB, 1MiB)";

const DURATION_HELP: &str = "write a number with a unit, e.g. 500ms, 10s, 2m, 1h 30m";

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        let fail = |why: String| UnitError {
            message: format!("invalid size \"{text}\": {why}"),
            help: SIZE_HELP,
        };
        if number.is_empty() {
            return Err(fail("it does not start with a whole number".to_owned()));
        }
        let unit = unit.trim_start();
        let factor = size_factor(unit).ok_or_else(|| fail(format!("unknown unit \"{unit}\"")))?;
        let count: u64 = number
            .parse()
            .map_err(|_| fail("the number is too large".to_owned()))?;
        let bytes = count
            .checked_mul(factor)
            .ok_or_else(|| fail("it is too large".to_owned()))?;
        Ok(ByteSize(bytes))
    }
}

/// The factor of a size unit; no unit means bytes.
fn size_factor(unit: &str) -> Option<u64> {
    if unit.is_empty() {
        return Some(1);
    }
    SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, factor)| factor)
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|e| UnitError {
                message: format!("invalid duration \"{text}\": {e}"),
                help: DURATION_HELP,
            })
    }
}

/// Turns a [`UnitError`] into a serde error that keeps the help text.
fn to_serde<E: de::Error>(error: UnitError) -> E {
    E::custom(format!("{}{HELP_MARK}{}", error.message, error.help))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as 1048576 or 1MiB")
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(bytes))
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
        u64::try_from(bytes).map(ByteSize).map_err(|_| {
            to_serde(UnitError {
                message: format!("invalid size {bytes}: it is negative"),
                help: SIZE_HELP,
            })
        })
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<ByteSize, E> {
        let why = "sizes are whole numbers".to_owned();
        Err(to_serde(UnitError {
            message: format!("invalid size {number}: {why}"),
            help: SIZE_HELP,
        }))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
        text.parse().map_err(to_serde)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 10s or 500ms")
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<HumanDuration, E> {
        Err(no_unit(&number))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<HumanDuration, E> {
        Err(no_unit(&number))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<HumanDuration, E> {
        Err(no_unit(&number))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        text.parse().map_err(to_serde)
    }
}

/// A bare number is refused: `10` could mean seconds or milliseconds.
fn no_unit<E: de::Error>(number: &dyn fmt::Display) -> E {
    let message = format!("invalid duration {number}: it has no unit");
    to_serde(UnitError {
        message,
        help: DURATION_HELP,
    })
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of bytes, or a whole number with a unit: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\\s*$" }
            ],
            "examples": ["1MiB", "512KiB", 1048576]
        })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with units (humantime syntax), e.g. 500ms, 10s, 1m 30s.",
            "type": "string",
            "examples": ["10s", "500ms", "1m 30s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Result<u64, UnitError> {
        text.parse::<ByteSize>().map(|size| size.0)
    }

    #[test]
    fn sizes_read_binary_and_decimal_units() {
        assert_eq!(size("512KiB"), Ok(512 * 1024));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("10MB"), Ok(10_000_000));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("2 KB"), Ok(2000));
        assert_eq!(size("100"), Ok(100));
        assert_eq!(size("100B"), Ok(100));
    }

    #[test]
    fn sizes_refuse_unknown_units_and_fractions() {
        let error = size("1XB").unwrap_err();
        assert_eq!(error.message, "invalid size \"1XB\": unknown unit \"XB\"");
        assert_eq!(error.help, SIZE_HELP);
        assert!(size("1.5MiB").is_err());
        assert!(size("mib").is_err());
        assert!(size("1mib").is_err());
    }

    #[test]
    fn sizes_refuse_overflow() {
        assert!(size("99999999999999999999").is_err());
        assert!(size("20000000TiB").is_err());
    }

    #[test]
    fn durations_use_humantime_syntax() {
        let parse = |text: &str| text.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        let error = parse("10x").unwrap_err();
        assert!(
            error.message.starts_with("invalid duration \"10x\": "),
            "{}",
            error.message
        );
    }

    #[test]
    fn yaml_numbers_are_bytes_but_not_durations() {
        let size: ByteSize = serde_saphyr::from_str("1048576").unwrap();
        assert_eq!(size, ByteSize(1 << 20));
        let error = serde_saphyr::from_str::<HumanDuration>("10").unwrap_err();
        assert!(error.to_string().contains("it has no unit"), "{error}");
    }
}

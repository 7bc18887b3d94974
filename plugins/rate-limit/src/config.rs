//! The plugin's `config:` block: strict serde types, checked once in `init`.
//! Every error names the offending key and says what a valid value looks like.

use std::{fmt, num::NonZeroU32, str::FromStr, time::Duration};

use governor::Quota;
use serde::Deserialize;

use crate::{
    backend::{self, BackendKind, SharedPolicy, SharedSettings},
    key::{KeySpec, MissingKey},
};

/// The `config:` block exactly as written in the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    rate: Rate,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    key: KeySpec,
    #[serde(default)]
    missing_key: MissingKey,
    #[serde(default = "emit_headers_by_default")]
    headers: bool,
    #[serde(default)]
    backend: BackendKind,
    #[serde(default, alias = "redis")]
    shared: Option<SharedSettings>,
}

fn emit_headers_by_default() -> bool {
    true
}

/// Validated settings: what the plugin runs with.
#[derive(Debug)]
pub(crate) struct Policy {
    pub quota: Quota,
    pub key: KeySpec,
    pub missing_key: MissingKey,
    pub headers: bool,
    /// `Some` with `backend: shared`: the buckets live in the host's shared state.
    pub shared: Option<SharedPolicy>,
}

impl Settings {
    /// Checks what serde cannot (the burst size) and builds the quota.
    pub fn validate(self) -> Result<Policy, String> {
        let burst = match self.burst {
            None => self.rate.count,
            Some(n) => NonZeroU32::new(n).ok_or_else(|| {
                format!(
                    "invalid burst `0`: it must be at least 1 (leave it out to use the rate's count, {})",
                    self.rate.count
                )
            })?,
        };
        let quota = self.rate.quota().allow_burst(burst);
        check_refill_time(&quota, burst, &self.rate)?;
        let shared = backend::validate(self.backend, self.shared, self.rate.per_second())?;
        Ok(Policy { quota, key: self.key, missing_key: self.missing_key, headers: self.headers, shared })
    }
}

/// The longest a drained bucket may take to refill. governor keeps times as
/// `u64` nanoseconds (about 584 years); a refill time near that would overflow,
/// and anything over a decade is almost certainly a typo.
const MAX_REFILL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn check_refill_time(quota: &Quota, burst: NonZeroU32, rate: &Rate) -> Result<(), String> {
    let refill_nanos = quota.replenish_interval().as_nanos() * u128::from(burst.get());
    if refill_nanos <= MAX_REFILL.as_nanos() {
        return Ok(());
    }
    let days = refill_nanos.div_ceil(86_400 * 1_000_000_000);
    Err(format!(
        "invalid burst `{burst}`: at rate `{rate}` a drained bucket would take {days} days to refill; \
         keep burst / rate under 10 years"
    ))
}

/// `rate: <count>/<unit>`, e.g. `100/s`: `count` requests per unit, replenished evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Rate {
    count: NonZeroU32,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
    Hour,
}

impl Unit {
    fn parse(text: &str) -> Option<Unit> {
        match text {
            "s" | "sec" | "second" => Some(Unit::Second),
            "m" | "min" | "minute" => Some(Unit::Minute),
            "h" | "hour" => Some(Unit::Hour),
            _ => None,
        }
    }
}

impl Rate {
    /// Requests per second.
    fn per_second(self) -> f64 {
        let seconds = match self.unit {
            Unit::Second => 1.0,
            Unit::Minute => 60.0,
            Unit::Hour => 3600.0,
        };
        f64::from(self.count.get()) / seconds
    }

    fn quota(self) -> Quota {
        match self.unit {
            Unit::Second => Quota::per_second(self.count),
            Unit::Minute => Quota::per_minute(self.count),
            Unit::Hour => Quota::per_hour(self.count),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let invalid = |why: String| format!("invalid rate `{text}`: {why}");
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected `<count>/<unit>` such as `100/s`, `30/m` or `1000/h`".into()))?;
        let count = parse_count(count.trim()).map_err(invalid)?;
        let unit = Unit::parse(unit.trim())
            .ok_or_else(|| invalid(format!("unknown unit `{}`, use `s`, `m` or `h`", unit.trim())))?;
        Ok(Rate { count, unit })
    }
}

fn parse_count(text: &str) -> Result<NonZeroU32, String> {
    let n: u32 =
        text.parse().map_err(|_| format!("the count `{text}` is not a whole number between 1 and {}", u32::MAX))?;
    NonZeroU32::new(n).ok_or_else(|| "the count must be at least 1".to_string())
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(text: String) -> Result<Rate, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use covet_plugin_api::Config;

    use super::*;

    fn policy(json: &str) -> Result<Policy, String> {
        Config::from_json(json).parse::<Settings>()?.validate()
    }

    #[test]
    fn rates_accept_short_and_long_units() {
        for (text, count, unit) in [
            ("100/s", 100, Unit::Second),
            ("1/second", 1, Unit::Second),
            (" 30 / m ", 30, Unit::Minute),
            ("5/min", 5, Unit::Minute),
            ("1000/h", 1000, Unit::Hour),
            ("2/hour", 2, Unit::Hour),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!((rate.count.get(), rate.unit), (count, unit), "{text}");
        }
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for (text, message) in [
            ("100", "invalid rate `100`: expected `<count>/<unit>` such as `100/s`, `30/m` or `1000/h`"),
            ("0/s", "invalid rate `0/s`: the count must be at least 1"),
            ("-1/s", "invalid rate `-1/s`: the count `-1` is not a whole number between 1 and 4294967295"),
            ("ten/s", "invalid rate `ten/s`: the count `ten` is not a whole number between 1 and 4294967295"),
            ("10/d", "invalid rate `10/d`: unknown unit `d`, use `s`, `m` or `h`"),
            ("10/", "invalid rate `10/`: unknown unit ``, use `s`, `m` or `h`"),
        ] {
            assert_eq!(text.parse::<Rate>().unwrap_err(), message);
        }
    }

    #[test]
    fn burst_defaults_to_the_rate_count() {
        let policy = policy(r#"{"rate": "100/s"}"#).unwrap();
        assert_eq!(policy.quota.burst_size().get(), 100);
        assert_eq!(policy.quota.replenish_interval(), Duration::from_millis(10));
        assert_eq!(policy.key, KeySpec::Ip);
        assert_eq!(policy.missing_key, MissingKey::Shared);
        assert!(policy.headers);
    }

    #[test]
    fn burst_overrides_the_bucket_size_but_not_the_rate() {
        let policy = policy(r#"{"rate": "1/m", "burst": 200}"#).unwrap();
        assert_eq!(policy.quota.burst_size().get(), 200);
        assert_eq!(policy.quota.replenish_interval(), Duration::from_secs(60));
    }

    #[test]
    fn errors_when_burst_is_zero() {
        let err = policy(r#"{"rate": "7/s", "burst": 0}"#).unwrap_err();
        assert_eq!(err, "invalid burst `0`: it must be at least 1 (leave it out to use the rate's count, 7)");
    }

    #[test]
    fn errors_when_the_bucket_would_take_over_ten_years_to_refill() {
        assert!(policy(r#"{"rate": "1/h", "burst": 87600}"#).is_ok());
        let err = policy(r#"{"rate": "1/h", "burst": 87601}"#).unwrap_err();
        assert_eq!(
            err,
            "invalid burst `87601`: at rate `1/h` a drained bucket would take 3651 days to refill; \
             keep burst / rate under 10 years"
        );
    }

    #[test]
    fn backend_defaults_to_memory_and_shared_has_defaults() {
        assert_eq!(policy(r#"{"rate": "1/s"}"#).unwrap().shared, None);
        let shared = policy(r#"{"rate": "1/s", "backend": "shared"}"#).unwrap().shared.unwrap();
        assert_eq!(shared.namespace, "ratelimit");
        assert_eq!(shared.timeout, Duration::from_millis(30));
        assert_eq!(shared.on_error, crate::backend::OnError::Allow);
        let shared = policy(
            r#"{"rate": "1/s", "backend": "shared", "shared": {"namespace": "fleet", "timeout": "5ms", "on_error": "deny"}}"#,
        )
        .unwrap()
        .shared
        .unwrap();
        assert_eq!((shared.namespace.as_str(), shared.timeout), ("fleet", Duration::from_millis(5)));
        assert_eq!(shared.on_error, crate::backend::OnError::Deny);
    }

    #[test]
    fn redis_is_still_accepted_for_the_backend_and_its_block() {
        let old = r#"{"rate": "1/s", "backend": "redis", "redis": {"namespace": "fleet", "timeout": "5ms", "on_error": "deny"}}"#;
        let new = r#"{"rate": "1/s", "backend": "shared", "shared": {"namespace": "fleet", "timeout": "5ms", "on_error": "deny"}}"#;
        let old = policy(old).unwrap().shared.expect("`backend: redis` is the shared backend");
        assert_eq!(Some(old), policy(new).unwrap().shared);
        let mixed = policy(r#"{"rate": "1/s", "backend": "redis", "shared": {"namespace": "x"}}"#).unwrap();
        assert_eq!(mixed.shared.unwrap().namespace, "x");
        let plain = policy(r#"{"rate": "1/s", "backend": "redis"}"#).unwrap().shared.unwrap();
        assert_eq!(plain.namespace, "ratelimit");
    }

    #[test]
    fn shared_settings_errors_say_what_is_wrong() {
        for (json, message) in [
            (
                r#"{"rate": "1/s", "shared": {}}"#,
                "the `shared:` block needs `backend: shared` (the default backend is `memory`)",
            ),
            (
                r#"{"rate": "1/s", "redis": {}}"#,
                "the `shared:` block needs `backend: shared` (the default backend is `memory`)",
            ),
            (
                r#"{"rate": "1/s", "backend": "shared", "shared": {"timeout": "0s"}}"#,
                "invalid shared.timeout `0s`: it must be above 0 and at most 10s (e.g. `30ms`)",
            ),
            (
                r#"{"rate": "1/s", "backend": "redis", "redis": {"timeout": "11s"}}"#,
                "invalid shared.timeout `11s`: it must be above 0 and at most 10s (e.g. `30ms`)",
            ),
            (
                r#"{"rate": "1/s", "backend": "shared", "shared": {"namespace": "a:b"}}"#,
                "invalid shared.namespace `a:b`: use 1-64 letters, digits, `_`, `-` or `.`",
            ),
            (
                r#"{"rate": "2000000/s", "backend": "shared"}"#,
                "with `backend: shared` the rate can be at most 1000000/s (buckets count whole microseconds)",
            ),
            (r#"{"rate": "1/s", "backend": "etcd"}"#, "unknown variant `etcd`, expected one of `memory`, `redis`, `shared`"),
            (
                r#"{"rate": "1/s", "backend": "shared", "shared": {"on_error": "maybe"}}"#,
                "unknown variant `maybe`, expected `allow` or `deny`",
            ),
        ] {
            assert_eq!(policy(json).unwrap_err(), message, "{json}");
        }
        let err = policy(r#"{"rate": "1/s", "backend": "shared", "shared": {"timeout": "soon"}}"#).unwrap_err();
        assert!(err.starts_with("invalid duration `soon`"), "{err}");
    }

    #[test]
    fn errors_name_the_bad_field() {
        assert_eq!(policy("{}").unwrap_err(), "missing field `rate`");
        let err = policy(r#"{"rate": "1/s", "limit": 3}"#).unwrap_err();
        assert!(err.starts_with("unknown field `limit`, expected one of `rate`, `burst`"), "{err}");
        let err = policy(r#"{"rate": "1/s", "missing_key": "allow"}"#).unwrap_err();
        assert_eq!(err, "unknown variant `allow`, expected `reject` or `shared`");
        assert_eq!(
            policy(r#"{"rate": "1/x"}"#).unwrap_err(),
            "invalid rate `1/x`: unknown unit `x`, use `s`, `m` or `h`"
        );
    }
}

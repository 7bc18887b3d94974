//! Checks the `upstreams:` block ([`super::upstreams`]) and builds the
//! `covet_services::upstream::UpstreamConfig` of each upstream: names,
//! `host:port` endpoints and weights, balancing and hash keys, TLS files
//! (read here, relative to the manifest's directory), health thresholds and
//! statuses, retries and percentages. Every problem is reported at its value.

use std::path::Path;
use std::time::Duration;

use covet_services::http::ClientCert;
use covet_services::upstream::{
    ActiveHealth, Balance, Circuit, EndpointSpec, HashKey, Outlier, Protocol, RetryPolicy, Sticky, UpstreamConfig,
    UpstreamTls,
};
use serde_saphyr::Spanned;

use super::Loc;
use super::source_index::join;
use super::suggest::did_you_mean;
use super::units::HumanDuration;
use super::upstreams::{
    Percent, RawActive, RawBalance, RawEndpoint, RawHealth, RawPassive, RawProtocol, RawRetries, RawUpstream,
    RawUpstreamTls, StatusEntry, UpstreamEntries,
};
use super::validate::{Problems, valid_name};

/// Checks `upstreams:`; the configs of the upstreams, in manifest order.
pub fn check(base: &Path, raw: UpstreamEntries, problems: &mut Problems) -> Vec<UpstreamConfig> {
    let entries = raw.0.into_iter();
    entries.map(|(name, upstream)| one(base, &name, upstream, problems)).collect()
}

fn one(base: &Path, name: &Spanned<String>, raw: RawUpstream, problems: &mut Problems) -> UpstreamConfig {
    let key = join("upstreams", &name.value);
    if !valid_name(&name.value) {
        let help = "an upstream name is lower-case letters, digits, `_` and `-`, starting with a letter or digit";
        problems.report(Loc::of(name), key.clone(), format!("invalid upstream name \"{}\"", name.value), Some(help.to_owned()));
    }
    let mut config = UpstreamConfig::new(&name.value, endpoints(&raw, &key, problems));
    config.protocol = match raw.protocol {
        RawProtocol::Http1 => Protocol::Http1,
        RawProtocol::Http2 => Protocol::Http2,
        RawProtocol::Auto => Protocol::Auto,
    };
    config.tls = raw.tls.map(|tls| tls_settings(base, tls, &join(&key, "tls"), problems));
    if let Some(balance) = &raw.balance {
        config.balance = balance_policy(balance, &join(&key, "balance"), problems);
    }
    config.sticky = raw.sticky.map(|s| {
        cookie_name(&s.cookie, &join(&key, "sticky.cookie"), problems);
        Sticky { cookie: s.cookie.value, ttl: s.ttl.map(|t| t.0) }
    });
    health(&mut config, raw.health, &join(&key, "health"), problems);
    config.retries = retries(raw.retries, &join(&key, "retries"), problems);
    set_positive(&mut config.timeout, raw.timeout, &join(&key, "timeout"), problems);
    set_positive(&mut config.connect_timeout, raw.connect_timeout, &join(&key, "connect_timeout"), problems);
    set_positive(&mut config.body_idle_timeout, raw.body_idle_timeout, &join(&key, "body_idle_timeout"), problems);
    set_positive(&mut config.dns_refresh, raw.dns_refresh, &join(&key, "dns_refresh"), problems);
    config.pool_idle_timeout = raw.pool_idle_timeout.map_or(config.pool_idle_timeout, |t| t.0);
    config.pool_max_idle_per_endpoint = raw.pool_max_idle_per_endpoint.unwrap_or(config.pool_max_idle_per_endpoint);
    config.circuit = circuit(raw.circuit, &join(&key, "circuit"), problems);
    config
}

fn endpoints(raw: &RawUpstream, key: &str, problems: &mut Problems) -> Vec<EndpointSpec> {
    let key = join(key, "endpoints");
    if raw.endpoints.value.is_empty() {
        let help = "list at least one, e.g. `endpoints: [\"127.0.0.1:9001\"]`";
        problems.report(Loc::of(&raw.endpoints), key.clone(), "an upstream without endpoints".to_owned(), Some(help.to_owned()));
    }
    let entries = raw.endpoints.value.iter().enumerate();
    entries.filter_map(|(i, entry)| endpoint(entry, &format!("{key}[{i}]"), problems)).collect()
}

fn endpoint(entry: &Spanned<RawEndpoint>, key: &str, problems: &mut Problems) -> Option<EndpointSpec> {
    let (addr, loc, weight) = match &entry.value {
        RawEndpoint::Short(addr) => (addr.as_str(), Loc::of(entry), None),
        RawEndpoint::Full(full) => (full.addr.value.as_str(), Loc::of(&full.addr), full.weight.as_ref()),
    };
    let weight = match weight {
        Some(w) if !(1..=1000).contains(&w.value) => {
            let help = "write a weight from 1 to 1000 (relative to the other endpoints' weights)";
            problems.report(Loc::of(w), join(key, "weight"), format!("weight {} is out of range", w.value), Some(help.to_owned()));
            1
        }
        Some(w) => w.value,
        None => 1,
    };
    match host_port(addr) {
        Some((host, port)) => Some(EndpointSpec { host, port, weight }),
        None => {
            let help = "write host:port: an IP address (10.0.0.7:8080, [::1]:8080) or a DNS name (users.internal:8080); no scheme, no path";
            problems.report(loc, key, format!("invalid endpoint \"{addr}\""), Some(help.to_owned()));
            None
        }
    }
}

/// `host:port` with a DNS name or IP literal (`[v6]`) and a port from 1.
pub fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().ok().map(|ip| (ip.to_string(), port));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some((host.to_owned(), port));
    }
    dns_name(host).then(|| (host.to_ascii_lowercase(), port))
}

/// Labels of letters, digits and `-` (not at either end), dot-separated, 253 characters at most.
fn dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    !host.is_empty() && host.len() <= 253 && host.trim_end_matches('.').split('.').all(label_ok)
}

fn tls_settings(base: &Path, raw: RawUpstreamTls, key: &str, problems: &mut Problems) -> UpstreamTls {
    let ca_pem = raw.ca.as_ref().and_then(|ca| read_file(base, ca, &join(key, "ca"), problems));
    let client_cert = match (&raw.client_cert, &raw.client_key) {
        (Some(cert), Some(k)) => {
            let cert_pem = read_file(base, cert, &join(key, "client_cert"), problems);
            let key_pem = read_file(base, k, &join(key, "client_key"), problems);
            cert_pem.zip(key_pem).map(|(cert_pem, key_pem)| ClientCert { cert_pem, key_pem })
        }
        (Some(one), None) | (None, Some(one)) => {
            let (has, lacks) = if raw.client_cert.is_some() { ("client_cert", "client_key") } else { ("client_key", "client_cert") };
            let help = format!("mTLS needs both `client_cert` and `client_key`; add `{lacks}`");
            problems.report(Loc::of(one), join(key, has), format!("`{has}` without `{lacks}`"), Some(help));
            None
        }
        (None, None) => None,
    };
    if raw.insecure_skip_verify {
        tracing::warn!(key, "insecure_skip_verify: the endpoints' certificates are not verified");
    }
    UpstreamTls { sni: raw.sni.map(|s| s.value), ca_pem, client_cert, insecure_skip_verify: raw.insecure_skip_verify }
}

fn read_file(base: &Path, path: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<Vec<u8>> {
    let joined = base.join(&path.value);
    match std::fs::read(&joined) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let help = format!("paths are relative to the manifest's directory: looked for {}", joined.display());
            let message = match e.kind() {
                std::io::ErrorKind::NotFound => format!("file \"{}\" not found", path.value),
                _ => format!("cannot read \"{}\": {e}", path.value),
            };
            problems.report(Loc::of(path), key, message, Some(help));
            None
        }
    }
}

const POLICIES: [&str; 4] = ["round_robin", "least_request", "ring_hash", "maglev"];

fn balance_policy(raw: &Spanned<RawBalance>, key: &str, problems: &mut Problems) -> Balance {
    let (policy, loc, hash_key, bounded) = match &raw.value {
        RawBalance::Name(name) => (name.as_str(), Loc::of(raw), None, None),
        RawBalance::Full(full) => (full.policy.value.as_str(), Loc::of(&full.policy), full.key.as_ref(), full.bounded_load.as_ref()),
    };
    let bounded_load = bounded.and_then(|b| {
        let ok = b.value.is_finite() && b.value > 1.0;
        if !ok {
            let help = "write a factor greater than 1, e.g. 1.25 (an endpoint takes at most 1.25 times the mean load)";
            problems.report(Loc::of(b), join(key, "bounded_load"), format!("bounded_load {} is not above 1", b.value), Some(help.to_owned()));
        }
        ok.then_some(b.value)
    });
    let hashing = |problems: &mut Problems| match hash_key {
        Some(k) => hash_key_of(k, &join(key, "key"), problems),
        None => {
            let help = format!("write `balance: {{ policy: {policy}, key: \"header:x-user\" }}` (or cookie:NAME, client_ip, path)");
            problems.report(loc.clone(), key, format!("`{policy}` needs a `key` to hash"), Some(help));
            None
        }
    };
    match policy {
        "round_robin" => Balance::RoundRobin,
        "least_request" => Balance::LeastRequest,
        "ring_hash" => hashing(problems).map_or(Balance::RoundRobin, |key| Balance::RingHash { key, bounded_load }),
        "maglev" => hashing(problems).map_or(Balance::RoundRobin, |key| Balance::Maglev { key, bounded_load }),
        other => {
            let help = did_you_mean(other, POLICIES).unwrap_or_else(|| "the policies are round_robin, least_request, ring_hash and maglev".to_owned());
            problems.report(loc.clone(), key, format!("unknown balancing policy \"{other}\""), Some(help));
            Balance::RoundRobin
        }
    }
}

/// `header:NAME`, `cookie:NAME`, `client_ip` or `path`.
fn hash_key_of(raw: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<HashKey> {
    let text = raw.value.trim();
    let parsed = match text.split_once(':') {
        Some(("header", name)) => http::HeaderName::from_bytes(name.as_bytes()).ok().map(|h| HashKey::Header(h.as_str().to_owned())),
        Some(("cookie", name)) if cookie_token(name) => Some(HashKey::Cookie(name.to_owned())),
        None if text == "client_ip" => Some(HashKey::ClientIp),
        None if text == "path" => Some(HashKey::Path),
        _ => None,
    };
    if parsed.is_none() {
        let help = "write header:NAME, cookie:NAME, client_ip or path, e.g. \"header:x-user\"";
        problems.report(Loc::of(raw), key, format!("invalid hash key \"{}\"", raw.value), Some(help.to_owned()));
    }
    parsed
}

/// An RFC 6265 cookie name: a non-empty token.
fn cookie_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn cookie_name(raw: &Spanned<String>, key: &str, problems: &mut Problems) {
    if !cookie_token(&raw.value) {
        let help = "write a cookie name: letters, digits and `-`, `_`, `.`, e.g. covet-sticky";
        problems.report(Loc::of(raw), key, format!("invalid cookie name \"{}\"", raw.value), Some(help.to_owned()));
    }
}

fn health(config: &mut UpstreamConfig, raw: RawHealth, key: &str, problems: &mut Problems) {
    config.active_health = raw.active.map(|a| active(a, &join(key, "active"), problems));
    if let Some(passive) = raw.passive {
        config.outlier = Some(outlier(passive, &join(key, "passive"), problems));
    }
    if let Some(p) = raw.panic_threshold {
        config.panic_threshold_percent = percent(&p, &join(key, "panic_threshold"), problems) as u8;
    }
}

fn active(raw: RawActive, key: &str, problems: &mut Problems) -> ActiveHealth {
    if !raw.path.value.starts_with('/') {
        let help = "write an absolute path, e.g. /healthz";
        problems.report(Loc::of(&raw.path), join(key, "path"), format!("health check path \"{}\" does not start with `/`", raw.path.value), Some(help.to_owned()));
    }
    let mut interval = Duration::from_secs(5);
    set_positive(&mut interval, raw.interval, &join(key, "interval"), problems);
    let mut timeout = Duration::from_secs(1);
    set_positive(&mut timeout, raw.timeout, &join(key, "timeout"), problems);
    let threshold = |t: Option<Spanned<u32>>, default: u32, name: &str, problems: &mut Problems| match t {
        Some(t) if t.value == 0 => {
            let help = "write a count of 1 or more consecutive checks";
            problems.report(Loc::of(&t), join(key, name), format!("`{name}` threshold 0 is below 1"), Some(help.to_owned()));
            1
        }
        Some(t) => t.value,
        None => default,
    };
    let healthy_threshold = threshold(raw.healthy, 2, "healthy", problems);
    let unhealthy_threshold = threshold(raw.unhealthy, 3, "unhealthy", problems);
    let statuses = raw.statuses.iter().enumerate();
    let mut expected_statuses: Vec<(u16, u16)> = statuses.filter_map(|(i, s)| status_range(s, &format!("{key}.statuses[{i}]"), problems)).collect();
    if expected_statuses.is_empty() {
        expected_statuses.push((200, 399));
    }
    ActiveHealth { path: raw.path.value, interval, timeout, healthy_threshold, unhealthy_threshold, expected_statuses, host: raw.host }
}

/// `200`, `"200"` or `"200-399"`, statuses from 100 to 599.
fn status_range(raw: &Spanned<StatusEntry>, key: &str, problems: &mut Problems) -> Option<(u16, u16)> {
    let status = |n: u64| u16::try_from(n).ok().filter(|s| (100..=599).contains(s));
    let parse = |t: &str| t.trim().parse::<u64>().ok().and_then(status);
    let range = match &raw.value {
        StatusEntry::Number(n) => status(*n).map(|s| (s, s)),
        StatusEntry::Text(text) => match text.split_once('-') {
            Some((low, high)) => parse(low).zip(parse(high)).filter(|(l, h)| l <= h),
            None => parse(text).map(|s| (s, s)),
        },
    };
    if range.is_none() {
        let help = "write a status from 100 to 599 (e.g. 200) or a range \"LOW-HIGH\" (e.g. \"200-399\")";
        problems.report(Loc::of(raw), key, format!("invalid status {}", shown(&raw.value)), Some(help.to_owned()));
    }
    range
}

fn shown(entry: &StatusEntry) -> String {
    match entry {
        StatusEntry::Number(n) => n.to_string(),
        StatusEntry::Text(t) => format!("\"{t}\""),
    }
}

fn outlier(raw: RawPassive, key: &str, problems: &mut Problems) -> Outlier {
    let d = Outlier::default();
    let mut o = Outlier {
        consecutive_5xx: raw.consecutive_5xx.unwrap_or(d.consecutive_5xx),
        consecutive_gateway_errors: raw.consecutive_gateway_errors.unwrap_or(d.consecutive_gateway_errors),
        consecutive_connect_failures: raw.consecutive_connect_failures.unwrap_or(d.consecutive_connect_failures),
        ..d
    };
    set_positive(&mut o.base_ejection, raw.base_ejection, &join(key, "base_ejection"), problems);
    set_positive(&mut o.max_ejection, raw.max_ejection, &join(key, "max_ejection"), problems);
    if let Some(p) = raw.max_ejection_percent {
        o.max_ejection_percent = percent(&p, &join(key, "max_ejection_percent"), problems) as u8;
    }
    o
}

fn retries(raw: RawRetries, key: &str, problems: &mut Problems) -> RetryPolicy {
    let mut r = RetryPolicy { non_idempotent: raw.non_idempotent, ..RetryPolicy::default() };
    r.max_retries = raw.attempts.unwrap_or(r.max_retries);
    if let Some(on) = raw.on {
        r.on_connect_failure = false;
        r.on_reset = false;
        r.on_statuses.clear();
        for (i, entry) in on.iter().enumerate() {
            retry_on(&mut r, entry, &format!("{key}.on[{i}]"), problems);
        }
    }
    if let Some(t) = raw.per_try_timeout {
        let mut per_try = t.value.0;
        set_positive(&mut per_try, Some(t), &join(key, "per_try_timeout"), problems);
        r.per_try_timeout = Some(per_try);
    }
    if let Some(b) = raw.budget {
        r.budget_percent = percent(&b, &join(key, "budget"), problems);
    }
    r.budget_min_per_sec = raw.min_per_sec.unwrap_or(r.budget_min_per_sec);
    r.replay_buffer = raw.replay_buffer.map_or(r.replay_buffer, |b| usize::try_from(b.0).unwrap_or(usize::MAX));
    r.backoff = raw.backoff.map_or(r.backoff, |b| b.0);
    r
}

fn retry_on(r: &mut RetryPolicy, entry: &Spanned<StatusEntry>, key: &str, problems: &mut Problems) {
    match &entry.value {
        StatusEntry::Text(t) if t == "connect_failure" => r.on_connect_failure = true,
        StatusEntry::Text(t) if t == "reset" => r.on_reset = true,
        StatusEntry::Text(t) if t.contains('-') || t.parse::<u64>().is_err() => {
            let help = did_you_mean(t, ["connect_failure", "reset"])
                .unwrap_or_else(|| "retry on connect_failure, reset or a status such as 503".to_owned());
            problems.report(Loc::of(entry), key, format!("unknown retry condition \"{t}\""), Some(help));
        }
        _ => {
            if let Some((status, _)) = status_range(entry, key, problems) {
                r.on_statuses.push(status);
            }
        }
    }
}

fn circuit(raw: super::upstreams::RawCircuit, key: &str, problems: &mut Problems) -> Circuit {
    let d = Circuit::default();
    let max_requests = match raw.max_requests {
        Some(m) if m.value == 0 => {
            let help = "write 1 or more requests in flight (the default is 1024)";
            problems.report(Loc::of(&m), join(key, "max_requests"), "max_requests 0 lets no request through".to_owned(), Some(help.to_owned()));
            1
        }
        Some(m) => m.value,
        None => d.max_requests,
    };
    Circuit {
        max_requests,
        max_pending: raw.max_pending.unwrap_or(d.max_pending),
        retry_after: raw.retry_after.map_or(d.retry_after, |t| t.0),
    }
}

/// A percentage from 0 to 100; out of range is reported (and clamped).
fn percent(raw: &Spanned<Percent>, key: &str, problems: &mut Problems) -> f64 {
    let value = raw.value.0;
    if !(0.0..=100.0).contains(&value) {
        let help = "write a share from 0% to 100%, e.g. 50%";
        problems.report(Loc::of(raw), key, format!("percentage {value} is out of range"), Some(help.to_owned()));
    }
    value.clamp(0.0, 100.0)
}

/// Replaces `target` by `raw` when given; a zero duration is reported.
fn set_positive(target: &mut Duration, raw: Option<Spanned<HumanDuration>>, key: &str, problems: &mut Problems) {
    let Some(raw) = raw else { return };
    if raw.value.0.is_zero() {
        let help = "write a positive duration, e.g. 500ms or 2s";
        problems.report(Loc::of(&raw), key, "a zero duration".to_owned(), Some(help.to_owned()));
        return;
    }
    *target = raw.value.0;
}

/// Checks plugin grants `upstreams: [...]` against the defined `names`.
pub fn grant(raw: &Spanned<String>, names: &[String], key: &str, problems: &mut Problems) -> Option<String> {
    if names.contains(&raw.value) {
        return Some(raw.value.clone());
    }
    let defined = match names.is_empty() {
        true => "no upstream is defined: add it under the top-level `upstreams:`".to_owned(),
        false => {
            let list = super::suggest::quoted_list(names.iter().map(String::as_str));
            let close = did_you_mean(&raw.value, names.iter().map(String::as_str)).map(|d| format!("{d} ")).unwrap_or_default();
            format!("{close}the upstreams defined are {list}")
        }
    };
    problems.report(Loc::of(raw), key, format!("unknown upstream \"{}\"", raw.value), Some(defined));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        assert_eq!(host_port("127.0.0.1:9001"), Some(("127.0.0.1".to_owned(), 9001)));
        assert_eq!(host_port("[::1]:80"), Some(("::1".to_owned(), 80)));
        assert_eq!(host_port("Users.Internal:8080"), Some(("users.internal".to_owned(), 8080)));
        assert_eq!(host_port("users.internal"), None);
        assert_eq!(host_port("http://x:80"), None);
        assert_eq!(host_port("x:0"), None);
        assert_eq!(host_port("x/y:80"), None);
        assert_eq!(host_port("::1:80"), None);
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(cookie_token("covet-sticky"));
        assert!(!cookie_token("a b"));
        assert!(!cookie_token(""));
        assert!(!cookie_token("a=b"));
    }
}

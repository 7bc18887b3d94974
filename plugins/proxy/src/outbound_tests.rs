//! Upstream request headers: hop-by-hop removal, the trust rules of the
//! forwarding headers (IPv4/IPv6, CIDR/all/none), Via, Host and upgrades.

use covet_plugin_api::{Config, Header, HttpVersion};

use super::*;
use crate::{config::Settings, trust::client_ip};

fn policy(json: &str) -> Policy {
    Config::from_json(json).parse::<Settings>().unwrap().compile().unwrap()
}

fn client(ip: &str, tls: bool) -> Client {
    Client { ip: client_ip(ip), tls, version: HttpVersion::Http11 }
}

fn run(json: &str, client: Client, incoming: &[(&str, &str)]) -> Vec<(String, String)> {
    let incoming: Vec<Header> = incoming.iter().map(|(n, v)| Header::new(*n, *v)).collect();
    let policy = policy(json);
    request_headers(&incoming, &client, &policy).into_iter().map(|(n, v)| (n.to_owned(), v.into_owned())).collect()
}

fn get<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

const TRUST_10: &str = r#"{"upstream": "u", "forwarded": {"trusted": ["10.0.0.0/8", "2001:db8::/32"]}}"#;

#[test]
fn hop_by_hop_headers_are_removed_and_others_kept_in_order() {
    let out = run(
        r#"{"upstream": "u", "via": false, "forwarded": {"x_forwarded": false, "rfc7239": false}}"#,
        client("203.0.113.5", false),
        &[
            ("host", "example.com"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("accept", "*/*"),
        ],
    );
    let expected = [("host", "example.com"), ("trailer", "x-checksum"), ("accept", "*/*")];
    assert_eq!(out, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
}

#[test]
fn te_trailers_goes_on_alone() {
    let out = run(r#"{"upstream": "u"}"#, client("10.0.0.1", false), &[("te", "trailers, deflate")]);
    assert_eq!(get(&out, "te"), ["trailers"]);
}

#[test]
fn untrusted_client_headers_are_replaced() {
    let out = run(
        r#"{"upstream": "u"}"#,
        client("203.0.113.5", true),
        &[
            ("host", "shop.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
        ],
    );
    assert_eq!(get(&out, "x-forwarded-for"), ["203.0.113.5"]);
    assert_eq!(get(&out, "x-forwarded-proto"), ["https"]);
    assert_eq!(get(&out, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(get(&out, "forwarded"), ["for=203.0.113.5;proto=https;host=shop.example"]);
    assert_eq!(get(&out, "host"), ["shop.example"]);
}

#[test]
fn trusted_client_headers_are_extended() {
    let out = run(
        TRUST_10,
        client("10.1.1.1", false),
        &[
            ("host", "shop.example"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "172.16.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "www.example"),
            ("forwarded", "for=198.51.100.1;proto=https"),
        ],
    );
    assert_eq!(get(&out, "x-forwarded-for"), ["198.51.100.1, 172.16.0.1, 10.1.1.1"]);
    assert_eq!(get(&out, "x-forwarded-proto"), ["https"]);
    assert_eq!(get(&out, "x-forwarded-host"), ["www.example"]);
    assert_eq!(get(&out, "forwarded"), ["for=198.51.100.1;proto=https, for=10.1.1.1;proto=http;host=shop.example"]);
}

#[test]
fn ipv6_clients_and_cidrs() {
    let incoming = [("host", "h"), ("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.1")];
    let trusted = run(TRUST_10, client("[2001:db8::9]", false), &incoming);
    assert_eq!(get(&trusted, "x-forwarded-for"), ["198.51.100.1, 2001:db8::9"]);
    assert_eq!(get(&trusted, "forwarded"), ["for=198.51.100.1, for=\"[2001:db8::9]\";proto=http;host=h"]);
    let untrusted = run(TRUST_10, client("2001:db9::9", false), &incoming);
    assert_eq!(get(&untrusted, "x-forwarded-for"), ["2001:db9::9"]);
    assert_eq!(get(&untrusted, "forwarded"), ["for=\"[2001:db9::9]\";proto=http;host=h"]);
}

#[test]
fn trust_all_and_none() {
    let incoming = [("x-forwarded-for", "198.51.100.1")];
    let all = run(r#"{"upstream": "u", "forwarded": {"trusted": "all"}}"#, client("203.0.113.5", false), &incoming);
    assert_eq!(get(&all, "x-forwarded-for"), ["198.51.100.1, 203.0.113.5"]);
    let none = run(r#"{"upstream": "u", "forwarded": {"trusted": "none"}}"#, client("10.0.0.1", false), &incoming);
    assert_eq!(get(&none, "x-forwarded-for"), ["10.0.0.1"]);
    // No Host header (an HTTP/2 request): no X-Forwarded-Host, no host= in Forwarded.
    assert!(get(&none, "x-forwarded-host").is_empty());
    assert_eq!(get(&none, "forwarded"), ["for=10.0.0.1;proto=http"]);
}

#[test]
fn switched_off_forwarding_passes_trusted_and_drops_untrusted() {
    let json = r#"{"upstream": "u", "forwarded": {"trusted": ["10.0.0.0/8"], "x_forwarded": false, "rfc7239": false}}"#;
    let incoming = [("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.1")];
    let trusted = run(json, client("10.0.0.1", false), &incoming);
    assert_eq!(get(&trusted, "x-forwarded-for"), ["198.51.100.1"]);
    assert_eq!(get(&trusted, "forwarded"), ["for=198.51.100.1"]);
    let untrusted = run(json, client("203.0.113.5", false), &incoming);
    assert!(get(&untrusted, "x-forwarded-for").is_empty() && get(&untrusted, "forwarded").is_empty());
}

#[test]
fn via_is_appended_with_the_client_version() {
    let mut c = client("10.0.0.1", false);
    c.version = HttpVersion::Http2;
    let out = run(r#"{"upstream": "u", "via": "edge"}"#, c, &[("via", "1.1 cdn")]);
    assert_eq!(get(&out, "via"), ["1.1 cdn, 2 edge"]);
    let out = run(r#"{"upstream": "u"}"#, client("10.0.0.1", false), &[]);
    assert_eq!(get(&out, "via"), ["1.1 covet"]);
}

#[test]
fn host_rules() {
    let incoming = [("host", "shop.example")];
    let out = run(r#"{"upstream": "u", "host": "upstream"}"#, client("10.0.0.1", false), &incoming);
    assert!(get(&out, "host").is_empty());
    assert_eq!(get(&out, "x-forwarded-host"), ["shop.example"]);
    let out = run(r#"{"upstream": "u", "host": "users.internal"}"#, client("10.0.0.1", false), &incoming);
    assert_eq!(get(&out, "host"), ["users.internal"]);
}

#[test]
fn upgrade_requests_keep_connection_upgrade() {
    let out = run(
        r#"{"upstream": "u"}"#,
        client("10.0.0.1", false),
        &[("connection", "Upgrade, x-hop"), ("upgrade", "websocket"), ("x-hop", "1"), ("sec-websocket-key", "k")],
    );
    assert_eq!(get(&out, "connection"), ["upgrade"]);
    assert_eq!(get(&out, "upgrade"), ["websocket"]);
    assert_eq!(get(&out, "sec-websocket-key"), ["k"]);
    assert!(get(&out, "x-hop").is_empty());
}

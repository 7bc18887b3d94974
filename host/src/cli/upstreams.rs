//! `covet upstreams`: a running host's upstreams (`GET /v1/upstreams`) as a
//! table, one row per endpoint, or with `--json` the API's answer as it came.
//!
//! ```text
//! UPSTREAM  ENDPOINT        HOST            WEIGHT  HEALTH     IN_FLIGHT  REQUESTS  ERRORS  EJECTIONS
//! users     10.0.0.7:8080   10.0.0.7             1  healthy            0       812       3          1
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Deserialize;

use super::control::{AdminArgs, run};

#[derive(Deserialize)]
struct Listing {
    upstreams: Vec<Upstream>,
}

#[derive(Deserialize)]
struct Upstream {
    name: String,
    #[serde(default)]
    panic_mode: bool,
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    address: String,
    host: String,
    weight: u32,
    health: String,
    in_flight: u64,
    requests: u64,
    errors: u64,
    ejections: u64,
}

/// Runs `covet upstreams`.
pub fn upstreams(admin: AdminArgs) -> ExitCode {
    run(&admin, |c| c.get("/v1/upstreams"), |listing: Listing| table(&listing.upstreams))
}

const HEADER: [&str; 9] = ["UPSTREAM", "ENDPOINT", "HOST", "WEIGHT", "HEALTH", "IN_FLIGHT", "REQUESTS", "ERRORS", "EJECTIONS"];
/// Columns from here on are numbers, aligned right (HEALTH excepted).
const NUMERIC: [bool; 9] = [false, false, false, true, false, true, true, true, true];

fn table(upstreams: &[Upstream]) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    for u in upstreams {
        let name = if u.panic_mode { format!("{} (panic)", u.name) } else { u.name.clone() };
        if u.endpoints.is_empty() {
            rows.push([name.clone(), "-".into(), "-".into(), String::new(), "no endpoints".into(), String::new(), String::new(), String::new(), String::new()]);
        }
        for e in &u.endpoints {
            let counts = [e.in_flight, e.requests, e.errors, e.ejections].map(|n| n.to_string());
            let [in_flight, requests, errors, ejections] = counts;
            rows.push([name.clone(), e.address.clone(), e.host.clone(), e.weight.to_string(), e.health.clone(), in_flight, requests, errors, ejections]);
        }
    }
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&HEADER.map(String::from)).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .zip(NUMERIC)
            .map(|((cell, w), numeric)| if numeric { format!("{cell:>w$}") } else { format!("{cell:<w$}") })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_endpoint_with_aligned_columns() {
        let listing: Listing = serde_json::from_value(serde_json::json!({ "upstreams": [
            { "name": "users", "panic_mode": false, "endpoints": [
                { "address": "127.0.0.1:9001", "host": "127.0.0.1", "weight": 1, "health": "healthy", "in_flight": 0, "requests": 12, "errors": 1, "ejections": 0 },
                { "address": "127.0.0.1:9002", "host": "users.internal", "weight": 3, "health": "ejected", "in_flight": 2, "requests": 7, "errors": 5, "ejections": 2 }
            ]},
            { "name": "none", "endpoints": [] }
        ]}))
        .unwrap();
        let text = table(&listing.upstreams);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("UPSTREAM  ENDPOINT        HOST            WEIGHT  HEALTH"), "{text}");
        assert!(lines[2].contains("users.internal       3  ejected"), "{text}");
        assert!(lines[2].ends_with("2         7       5          2"), "{text}");
        assert!(lines[3].contains("no endpoints"), "{text}");
    }
}

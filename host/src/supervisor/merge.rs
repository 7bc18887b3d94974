//! One `/metrics` for the whole host in process mode: the children's
//! expositions (Prometheus text format 0.0.4, as [`crate::admin`] writes
//! it) merged into one, sample by sample.
//!
//! Samples with the same name and labels are combined: counters, histogram
//! buckets, sums and counts, and most gauges (connections open, requests in
//! flight) are **summed**, so `covet_requests_total` counts the host's
//! requests whichever process served them. Two kinds of gauge are not
//! amounts: `*_info` gauges (always 1, labelled with what is live) take the
//! **maximum**, and `*_healthy` gauges take the **minimum** (an endpoint is
//! shown healthy only when every process finds it so). Families and samples
//! keep the order in which they first appear.

use std::collections::HashMap;
use std::fmt::Write;

/// How a family's samples combine.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Combine {
    Sum,
    Max,
    Min,
}

/// One metric family as merged so far.
#[derive(Debug)]
struct Family {
    header: Vec<String>,
    combine: Combine,
    samples: Vec<(String, f64)>,
    index: HashMap<String, usize>,
}

impl Family {
    fn new(name: &str, kind: &str) -> Family {
        let combine = match kind {
            "gauge" if name.ends_with("_info") => Combine::Max,
            "gauge" if name.ends_with("_healthy") => Combine::Min,
            _ => Combine::Sum,
        };
        Family { header: Vec::new(), combine, samples: Vec::new(), index: HashMap::new() }
    }

    fn add(&mut self, series: &str, value: f64) {
        match self.index.get(series) {
            Some(&i) => {
                let current = &mut self.samples[i].1;
                *current = match self.combine {
                    Combine::Sum => *current + value,
                    Combine::Max => current.max(value),
                    Combine::Min => current.min(value),
                };
            }
            None => {
                self.index.insert(series.to_owned(), self.samples.len());
                self.samples.push((series.to_owned(), value));
            }
        }
    }
}

/// The merged exposition of `expositions`.
pub fn merge<S: AsRef<str>>(expositions: &[S]) -> String {
    let mut families: Vec<(String, Family)> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for text in expositions {
        merge_one(text.as_ref(), &mut families, &mut by_name);
    }
    render(&families)
}

fn merge_one(text: &str, families: &mut Vec<(String, Family)>, by_name: &mut HashMap<String, usize>) {
    let mut current: Option<usize> = None;
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            let (Some(kind @ ("HELP" | "TYPE")), Some(name)) = (words.next(), words.next()) else { continue };
            let i = *by_name.entry(name.to_owned()).or_insert_with(|| {
                families.push((name.to_owned(), Family::new(name, "untyped")));
                families.len() - 1
            });
            let family = &mut families[i].1;
            if kind == "TYPE" {
                let typed = words.next().unwrap_or("untyped");
                family.combine = Family::new(name, typed).combine;
            }
            // Each child repeats the header; keep the first child's.
            let prefix = format!("# {kind} ");
            if !family.header.iter().any(|h| h.starts_with(&prefix)) {
                family.header.push(line.to_owned());
            }
            current = Some(i);
            continue;
        }
        let Some((series, value)) = sample(line) else { continue };
        let i = match current.filter(|&i| belongs(&families[i].0, series)) {
            Some(i) => i,
            None => *by_name.entry(series_name(series).to_owned()).or_insert_with(|| {
                families.push((series_name(series).to_owned(), Family::new(series_name(series), "untyped")));
                families.len() - 1
            }),
        };
        families[i].1.add(series, value);
    }
}

/// `name{labels} value` split into the series and its value.
fn sample(line: &str) -> Option<(&str, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((series.trim_end(), value))
}

fn series_name(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

/// Whether `series` is a sample of family `family` (`_total`, `_bucket`…).
fn belongs(family: &str, series: &str) -> bool {
    series_name(series).strip_prefix(family).is_some_and(|rest| {
        matches!(rest, "" | "_total" | "_bucket" | "_sum" | "_count" | "_created")
    })
}

fn render(families: &[(String, Family)]) -> String {
    let mut out = String::new();
    for (_, family) in families {
        for line in &family.header {
            let _ = writeln!(out, "{line}");
        }
        for (series, value) in &family.samples {
            let _ = writeln!(out, "{series} {}", number(*value));
        }
    }
    out
}

/// A value as Prometheus writes it: integers without a fraction.
fn number(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        return format!("{}", value as i64);
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "# HELP covet_requests Requests answered.\n# TYPE covet_requests counter\n\
        covet_requests_total{class=\"2xx\"} 3\ncovet_requests_total{class=\"5xx\"} 1\n\
        # HELP covet_request_duration_seconds Latency.\n# TYPE covet_request_duration_seconds histogram\n\
        covet_request_duration_seconds_bucket{le=\"0.001\"} 2\ncovet_request_duration_seconds_bucket{le=\"+Inf\"} 4\n\
        covet_request_duration_seconds_sum 0.5\ncovet_request_duration_seconds_count 4\n\
        # HELP covet_plugin_info The live instance.\n# TYPE covet_plugin_info gauge\ncovet_plugin_info{plugin=\"a\",version=\"2\"} 1\n\
        # HELP covet_connections_open Open.\n# TYPE covet_connections_open gauge\ncovet_connections_open 5\n\
        # HELP covet_upstream_endpoint_healthy Health.\n# TYPE covet_upstream_endpoint_healthy gauge\n\
        covet_upstream_endpoint_healthy{endpoint=\"x\"} 1\n";
    const B: &str = "# HELP covet_requests Requests answered.\n# TYPE covet_requests counter\n\
        covet_requests_total{class=\"2xx\"} 4\ncovet_requests_total{class=\"4xx\"} 2\n\
        # HELP covet_request_duration_seconds Latency.\n# TYPE covet_request_duration_seconds histogram\n\
        covet_request_duration_seconds_bucket{le=\"0.001\"} 1\ncovet_request_duration_seconds_bucket{le=\"+Inf\"} 1\n\
        covet_request_duration_seconds_sum 0.25\ncovet_request_duration_seconds_count 1\n\
        # HELP covet_plugin_info The live instance.\n# TYPE covet_plugin_info gauge\ncovet_plugin_info{plugin=\"a\",version=\"2\"} 1\n\
        # HELP covet_connections_open Open.\n# TYPE covet_connections_open gauge\ncovet_connections_open 2\n\
        # HELP covet_upstream_endpoint_healthy Health.\n# TYPE covet_upstream_endpoint_healthy gauge\n\
        covet_upstream_endpoint_healthy{endpoint=\"x\"} 0\n";

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    #[test]
    fn counters_histograms_and_amount_gauges_are_summed() {
        let merged = merge(&[A, B]);
        assert_eq!(value(&merged, "covet_requests_total{class=\"2xx\"}").as_deref(), Some("7"));
        assert_eq!(value(&merged, "covet_requests_total{class=\"5xx\"}").as_deref(), Some("1"));
        assert_eq!(value(&merged, "covet_requests_total{class=\"4xx\"}").as_deref(), Some("2"));
        assert_eq!(value(&merged, "covet_request_duration_seconds_bucket{le=\"+Inf\"}").as_deref(), Some("5"));
        assert_eq!(value(&merged, "covet_request_duration_seconds_sum").as_deref(), Some("0.75"));
        assert_eq!(value(&merged, "covet_connections_open").as_deref(), Some("7"));
    }

    #[test]
    fn info_gauges_take_the_maximum_and_health_the_minimum() {
        let merged = merge(&[A, B]);
        assert_eq!(value(&merged, "covet_plugin_info{plugin=\"a\",version=\"2\"}").as_deref(), Some("1"));
        assert_eq!(value(&merged, "covet_upstream_endpoint_healthy{endpoint=\"x\"}").as_deref(), Some("0"));
    }

    #[test]
    fn each_family_is_written_once_with_its_samples_together() {
        let merged = merge(&[A, B, A]);
        assert_eq!(merged.matches("# TYPE covet_requests counter").count(), 1);
        assert_eq!(merged.matches("# HELP covet_requests ").count(), 1);
        let lines: Vec<&str> = merged.lines().collect();
        let start = lines.iter().position(|l| *l == "# TYPE covet_requests counter").unwrap();
        let samples: Vec<&str> = lines[start + 1..].iter().take_while(|l| !l.starts_with('#')).copied().collect();
        assert_eq!(samples.len(), 3, "{merged}");
        assert_eq!(value(&merged, "covet_requests_total{class=\"2xx\"}").as_deref(), Some("10"));
    }

    #[test]
    fn one_exposition_comes_back_unchanged() {
        assert_eq!(merge(&[A]), A);
    }
}

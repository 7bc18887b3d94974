//! `covet cache purge`: asks a running host's admin API to purge cached
//! responses (`POST /v1/cache/purge`) by key, path prefix (optionally on one
//! host) or tag, and prints what was written:
//!
//! ```text
//! $ covet cache purge --tag product-7
//! purged tag "product-7": seq 12 in namespace cache (redis)
//! ```

use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::control::{AdminArgs, EXIT_CODES, run};

/// `covet cache …`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Purge cached responses: every `cache` plugin sharing the host's state
    /// drops what matches (within its purge_poll).
    #[command(after_help = EXIT_CODES)]
    #[command(group(ArgGroup::new("what").required(true).args(["key", "prefix", "tag"])))]
    Purge {
        /// One primary cache key: HOST/PATH[?QUERY], e.g. example.com/products/7.
        #[arg(long, value_name = "K")]
        key: Option<String>,
        /// Every path starting with P (starts with /).
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// With --prefix: only on this host.
        #[arg(long, value_name = "H", conflicts_with_all = ["key", "tag"])]
        host: Option<String>,
        /// Every response tagged T (its Surrogate-Key or Cache-Tag).
        #[arg(long, value_name = "T")]
        tag: Option<String>,
        /// The cache's shared-state namespace (its `namespace` setting).
        #[arg(long, value_name = "N", default_value = "cache")]
        namespace: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// The 202 answer.
#[derive(Deserialize)]
struct Purged {
    seq: u64,
    namespace: String,
    kind: String,
    value: String,
    backend: String,
}

/// Runs `covet cache …`.
pub fn cache(command: CacheCommand) -> ExitCode {
    let CacheCommand::Purge { key, prefix, host, tag, namespace, admin } = command;
    let body = body([("key", key), ("prefix", prefix), ("host", host), ("tag", tag), ("namespace", Some(namespace))]);
    run(&admin, |c| c.post("/v1/cache/purge", Some(&body)), |p: Purged| {
        format!("purged {} {:?}: seq {} in namespace {} ({})", p.kind, p.value, p.seq, p.namespace, p.backend)
    })
}

/// The JSON body: the fields given.
fn body<const N: usize>(fields: [(&str, Option<String>); N]) -> Value {
    let fields = fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), Value::String(value?))));
    Value::Object(fields.collect::<Map<_, _>>())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: CacheCommand,
    }

    #[test]
    fn exactly_one_of_key_prefix_tag_and_host_only_with_prefix() {
        let parse = |args: &[&str]| Cli::try_parse_from(["cache"].iter().chain(args));
        assert!(parse(&["purge"]).is_err(), "one is required");
        assert!(parse(&["purge", "--key", "a", "--tag", "t"]).is_err(), "only one");
        let host_alone = parse(&["purge", "--tag", "t", "--host", "a.example"]);
        assert!(host_alone.is_err(), "--host needs --prefix: {:?}", host_alone.ok().map(|c| c.command));
        let Ok(Cli { command: CacheCommand::Purge { prefix, host, namespace, .. } }) =
            parse(&["purge", "--prefix", "/static/", "--host", "a.example"])
        else {
            panic!("a prefix with a host parses")
        };
        assert_eq!((prefix.as_deref(), host.as_deref(), namespace.as_str()), (Some("/static/"), Some("a.example"), "cache"));
    }

    #[test]
    fn the_body_carries_the_fields_given() {
        let value = body([("tag", Some("t".into())), ("host", None), ("namespace", Some("cache".into()))]);
        assert_eq!(value, serde_json::json!({"tag": "t", "namespace": "cache"}));
    }
}

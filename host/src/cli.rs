//! The `covet` command line: `host` serves a manifest, `check` validates one
//! (exit 2 with file:line:column errors when invalid), `schema` prints the
//! manifest's JSON Schema; `plugin list|reload|swap` and `reload` drive a
//! running host through its admin API ([`control`]), and `upstreams` shows
//! its upstreams' endpoints and health ([`upstreams`]); `cache purge` purges
//! cached responses ([`cache`]).

pub mod admin_client;
pub mod cache;
pub mod control;
pub mod upstreams;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{access_log::AccessLog, error::HostError, manifest::Manifest, server, telemetry};

/// covet: a plugin host for HTTP gateways.
#[derive(Parser, Debug)]
#[command(name = "covet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the manifest's routes until SIGINT/SIGTERM.
    Host {
        /// The manifest (YAML).
        #[arg(long, short = 'p', value_name = "FILE")]
        plugins: PathBuf,
        /// Watch the manifest and every plugin artifact; reload what changes.
        #[arg(long, env = "COVET_WATCH", value_parser = clap::builder::BoolishValueParser::new())]
        watch: bool,
    },
    /// Validate a manifest, its plugin libraries and their configs without serving.
    Check {
        /// The manifest (YAML).
        #[arg(long, short = 'p', value_name = "FILE")]
        plugins: PathBuf,
    },
    /// Print the manifest's JSON Schema (for editors).
    Schema,
    /// List, reload or swap the plugins of a running host (admin API).
    #[command(after_help = control::EXIT_CODES)]
    Plugin {
        #[command(subcommand)]
        command: control::PluginCommand,
    },
    /// Re-read a running host's manifest and apply what changed (admin API).
    #[command(after_help = control::EXIT_CODES)]
    Reload {
        #[command(flatten)]
        admin: control::AdminArgs,
    },
    /// Show a running host's upstreams: each endpoint's health, weight and counters (admin API).
    #[command(after_help = control::EXIT_CODES)]
    Upstreams {
        #[command(flatten)]
        admin: control::AdminArgs,
    },
    /// Purge a running host's cached responses by key, path prefix or tag (admin API).
    Cache {
        #[command(subcommand)]
        command: cache::CacheCommand,
    },
}

/// Runs the command line; the process exit code is the result.
pub fn main() -> ExitCode {
    server::tls::install_provider();
    match Cli::parse().command {
        Command::Host { plugins, watch } => host(plugins, server::RunOptions { watch }),
        Command::Check { plugins } => check(plugins),
        Command::Schema => {
            println!("{}", crate::manifest::json_schema());
            ExitCode::SUCCESS
        }
        Command::Plugin { command } => control::plugin(command),
        Command::Reload { admin } => control::reload(admin),
        Command::Upstreams { admin } => upstreams::upstreams(admin),
        Command::Cache { command } => cache::cache(command),
    }
}

fn check(path: PathBuf) -> ExitCode {
    let manifest = match Manifest::load(&path) {
        Ok(m) => m,
        Err(e) => return fail(&HostError::Manifest(e)),
    };
    let checked = crate::admin::AdminConfig::resolve(&manifest.admin).and_then(|_| crate::control::reload::check(&manifest));
    match checked {
        Ok(()) => {
            let (p, r, l) = (manifest.plugins.len(), manifest.routes.len(), manifest.listen.len());
            println!("{}: ok ({p} plugins, {r} routes, {l} listeners)", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Most threads for blocking plugin calls, plugin inits and retirements.
const BLOCKING_THREADS: usize = 32;

fn host(path: PathBuf, options: server::RunOptions) -> ExitCode {
    let manifest = match Manifest::load(&path) {
        Ok(m) => m,
        Err(e) => return fail(&HostError::Manifest(e)),
    };
    let (_log_guard, log_writer) = telemetry::init(&manifest.log);
    crate::background::configure(&manifest.limits);
    let access_log = manifest.log.access.then(|| AccessLog::new(manifest.log.format, log_writer));
    // Calls into `blocking` plugins run through `block_in_place`, which hands
    // the worker's queue to a thread of the blocking pool. Uncapped (tokio's
    // default is 512), 50 busy connections to a blocking plugin grew the pool
    // to 512 threads and RSS from 23 MB to 250 MB; capped, a call waits for
    // a thread instead.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(Duration::from_secs(2))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => return fail(&HostError::Io(e)),
    };
    let result = match crate::supervisor::supervises(&manifest) {
        true => runtime.block_on(crate::supervisor::run(manifest, options.watch)),
        false => runtime.block_on(server::run(manifest, access_log, options)),
    };
    // Do not wait on plugin calls still blocking a thread past the deadline.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the error; manifest and plugin-load problems exit 2, the rest 1.
fn fail(err: &HostError) -> ExitCode {
    eprintln!("{err}");
    match err {
        HostError::Manifest(_) | HostError::PluginLoad { .. } | HostError::Admin(_) => ExitCode::from(2),
        HostError::Process { code: Some(code @ 1..=255), .. } => ExitCode::from(u8::try_from(*code).unwrap_or(1)),
        _ => ExitCode::from(1),
    }
}

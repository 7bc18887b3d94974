//! The `covet` command line: `host` serves a manifest, `check` validates one
//! (exit 2 with file:line:column errors when invalid), `schema` prints the
//! manifest's JSON Schema.

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
    },
    /// Validate a manifest, its plugin libraries and their configs without serving.
    Check {
        /// The manifest (YAML).
        #[arg(long, short = 'p', value_name = "FILE")]
        plugins: PathBuf,
    },
    /// Print the manifest's JSON Schema (for editors).
    Schema,
}

/// Runs the command line; the process exit code is the result.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Host { plugins } => host(plugins),
        Command::Check { plugins } => check(plugins),
        Command::Schema => {
            println!("{}", crate::manifest::json_schema());
            ExitCode::SUCCESS
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    let manifest = match Manifest::load(&path) {
        Ok(m) => m,
        Err(e) => return fail(&HostError::Manifest(e)),
    };
    match crate::control::reload::check(&manifest) {
        Ok(()) => {
            let (p, r, l) = (manifest.plugins.len(), manifest.routes.len(), manifest.listen.len());
            println!("{}: ok ({p} plugins, {r} routes, {l} listeners)", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn host(path: PathBuf) -> ExitCode {
    let manifest = match Manifest::load(&path) {
        Ok(m) => m,
        Err(e) => return fail(&HostError::Manifest(e)),
    };
    let (_log_guard, log_writer) = telemetry::init(&manifest.log);
    let access_log = manifest.log.access.then(|| AccessLog::new(manifest.log.format, log_writer));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&HostError::Io(e)),
    };
    let result = runtime.block_on(server::run(manifest, access_log));
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
        HostError::Manifest(_) | HostError::PluginLoad { .. } => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

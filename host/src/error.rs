//! The host's one error type. Request-time failures never use it: they become
//! responses in [`crate::problem`]; this is for loading, binding and serving.

use std::{net::SocketAddr, path::PathBuf};

use crate::manifest::ManifestError;

/// Everything that can stop the host from starting or reloading.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The manifest is invalid (the rendered diagnostics say where and how to fix it).
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// A plugin library could not be loaded or was refused.
    #[error("plugin \"{plugin}\" ({}) was refused: {reason}", path.display())]
    PluginLoad {
        /// The manifest name of the plugin.
        plugin: String,
        /// The artifact.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plugin's `init` refused its config.
    #[error("plugin \"{plugin}\" failed to initialise: {reason}")]
    PluginInit {
        /// The manifest name of the plugin.
        plugin: String,
        /// What the plugin said.
        reason: String,
    },
    /// A control-plane request named a plugin the manifest does not define.
    #[error("no plugin named \"{plugin}\" (the manifest defines: {known})")]
    UnknownPlugin {
        /// The name asked for.
        plugin: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A child host process (`processes:` above 1) failed to start or serve.
    #[error("{message}")]
    Process {
        /// What happened, naming the process.
        message: String,
        /// Its exit code, when it exited with one (the supervisor exits with it).
        code: Option<i32>,
    },
    /// The admin API cannot start as configured.
    #[error("admin API: {0}")]
    Admin(String),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS listener cannot start (certificates, keys, client CA).
    #[error("TLS on {addr}: {reason}")]
    Tls {
        /// The listener.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Any other I/O failure while serving.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

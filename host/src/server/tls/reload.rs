//! Certificate reload: every [`POLL`] the listener's certificate, key and
//! SNI files are read and compared with what is being served; when any
//! changed, the whole set is loaded again and swapped into the
//! [`Resolver`]. New handshakes get the new certificates, open connections
//! keep theirs. A set that fails to load (a half-written or broken PEM) is
//! logged once and the old one keeps serving.
//!
//! Polling contents (rather than file events) also catches editors and
//! tools that replace a file by renaming, and costs a few small reads a
//! second. The client CA bundle is read at start only.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::watch;

use super::resolver::{CertSet, Resolver};
use crate::manifest::TlsSettings;

/// How often the files are checked.
pub const POLL: Duration = Duration::from_millis(500);

/// Watches `settings`' files until the host shuts down.
pub async fn watch(settings: TlsSettings, resolver: Arc<Resolver>, mut stop: watch::Receiver<bool>) {
    let files = files(&settings);
    let mut served = read_all(&files);
    let mut failed: Option<Vec<Option<Vec<u8>>>> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::server::stopped(&mut stop) => return,
        }
        let now = read_all(&files);
        if now == served || failed.as_ref() == Some(&now) {
            continue;
        }
        match CertSet::load(&settings) {
            Ok(set) => {
                resolver.replace(set);
                tracing::info!(cert = %settings.default.cert.display(), "TLS certificates reloaded");
                served = now;
                failed = None;
            }
            Err(problem) => {
                tracing::error!("TLS certificates not reloaded, still serving the previous ones: {problem}");
                failed = Some(now);
            }
        }
    }
}

fn files(settings: &TlsSettings) -> Vec<PathBuf> {
    let mut files = vec![settings.default.cert.clone(), settings.default.key.clone()];
    for sni in &settings.sni {
        files.push(sni.files.cert.clone());
        files.push(sni.files.key.clone());
    }
    files
}

fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

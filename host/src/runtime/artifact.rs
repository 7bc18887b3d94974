//! Content-addressed loading of native libraries.
//!
//! A Rust cdylib must never be `dlclose`d, and `dlopen` of a path (or inode)
//! that is already loaded returns the old code. So every artifact is hashed
//! (SHA-256) and loaded once per content: a new build at the same path has a
//! new hash, is copied to a private file named by that hash, loaded from the
//! copy, and the copy is unlinked at once (the mapping stays valid, nothing
//! is left on disk). Loading the same content again reuses the library
//! already in memory, so a config-only change costs no new `dlopen`.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::native::NativeLibrary;
use crate::error::HostError;

/// Libraries loaded by this process, by content hash.
#[derive(Default)]
pub struct LibraryCache {
    by_hash: HashMap<String, NativeLibrary>,
}

/// A library and the hash of the artifact it came from.
#[derive(Clone)]
pub struct Opened {
    /// The library (shared with every other load of the same content).
    pub library: NativeLibrary,
    /// SHA-256 of the artifact, lowercase hex.
    pub sha256: String,
}

impl LibraryCache {
    /// Opens the artifact at `path` for plugin `plugin`, loading its code
    /// only if this content has not been loaded before.
    pub fn open(&mut self, plugin: &str, path: &Path) -> Result<Opened, HostError> {
        let refuse = |reason: String| HostError::PluginLoad { plugin: plugin.into(), path: path.into(), reason };
        let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read the artifact: {e}")))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(library) = self.by_hash.get(&sha256) {
            return Ok(Opened { library: library.with_path(path), sha256 });
        }
        let copy = private_copy(&bytes, &sha256).map_err(|e| refuse(format!("cannot stage a private copy: {e}")))?;
        let loaded = NativeLibrary::load(plugin, &copy);
        // The mapping outlives the file; removing it now leaves nothing behind.
        let _ = std::fs::remove_file(&copy);
        let library = loaded.map_err(|e| match e {
            HostError::PluginLoad { reason, .. } => refuse(reason),
            other => other,
        })?;
        let library = library.with_path(path);
        self.by_hash.insert(sha256.clone(), library.clone());
        tracing::debug!(plugin, path = %path.display(), sha256, "library loaded");
        Ok(Opened { library, sha256 })
    }

    /// How many distinct library builds this process has loaded.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing has been loaded yet.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Hashes the file at `path` (what `--watch` and reloads compare).
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes `bytes` to a fresh file only this process uses.
fn private_copy(bytes: &[u8], sha256: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("covet-{}-{}.so", std::process::id(), &sha256[..16]));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    Ok(path)
}

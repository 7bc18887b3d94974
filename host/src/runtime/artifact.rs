//! Content-addressed loading of plugin builds: native libraries and WASM
//! components.
//!
//! A Rust cdylib must never be `dlclose`d, and `dlopen` of a path (or inode)
//! that is already loaded returns the old code. So every artifact is hashed
//! (SHA-256) and loaded once per content: a new build at the same path has a
//! new hash, is copied to a private file named by that hash, loaded from the
//! copy, and the copy is unlinked at once (the mapping stays valid, nothing
//! is left on disk). Loading the same content again reuses the library
//! already in memory, so a config-only change costs no new `dlopen`.
//!
//! A WASM component is compiled from the bytes read for the hash (no copy
//! needed); the same content is compiled once, and a dropped component's
//! code is freed with its last instance.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::{Executor, native::NativeLibrary, wasm::WasmComponent};
use crate::{error::HostError, manifest::{PluginKind, PluginSpec}};
use covet_plugin_api::Phases;

/// Builds loaded by this process, by content hash.
#[derive(Default)]
pub struct LibraryCache {
    by_hash: HashMap<String, Code>,
}

/// A loaded plugin build, of either kind.
#[derive(Clone)]
pub enum Code {
    /// A native library.
    Native(NativeLibrary),
    /// A compiled WASM component.
    Wasm(WasmComponent),
}

impl Code {
    /// The phases the build implements.
    pub fn phases(&self) -> Phases {
        match self {
            Code::Native(library) => library.descriptor().phases,
            Code::Wasm(component) => component.phases(),
        }
    }

    fn kind(&self) -> PluginKind {
        match self {
            Code::Native(_) => PluginKind::Native,
            Code::Wasm(_) => PluginKind::Wasm,
        }
    }

    /// The same build, reported as loaded for the artifact at `path`.
    pub fn with_path(&self, path: &Path) -> Code {
        match self {
            Code::Native(library) => Code::Native(library.with_path(path)),
            Code::Wasm(component) => Code::Wasm(component.with_path(path)),
        }
    }

    /// Makes a live instance for manifest entry `spec` (runs its `init`);
    /// relative paths in a native plugin's config resolve against `base_dir`.
    pub fn instantiate(&self, spec: &PluginSpec, base_dir: &Path) -> Result<Box<dyn Executor>, HostError> {
        match self {
            Code::Native(library) => Ok(Box::new(library.instantiate(&spec.name, &spec.config.to_string(), base_dir)?)),
            Code::Wasm(component) => component.instantiate(spec),
        }
    }
}

/// A build and the hash of the artifact it came from.
#[derive(Clone)]
pub struct Opened {
    /// The build (shared with every other load of the same content).
    pub library: Code,
    /// SHA-256 of the artifact, lowercase hex.
    pub sha256: String,
}

impl LibraryCache {
    /// Opens the artifact at `path` for plugin `plugin` of `kind`, loading
    /// its code only if this content has not been loaded before.
    pub fn open(&mut self, plugin: &str, kind: PluginKind, path: &Path) -> Result<Opened, HostError> {
        let refuse = |reason: String| HostError::PluginLoad { plugin: plugin.into(), path: path.into(), reason };
        let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read the artifact: {e}")))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(library) = self.by_hash.get(&sha256).filter(|code| code.kind() == kind) {
            return Ok(Opened { library: library.with_path(path), sha256 });
        }
        if kind == PluginKind::Wasm {
            let component = WasmComponent::compile(path, &bytes, &sha256).map_err(refuse)?;
            let library = Code::Wasm(component);
            self.by_hash.insert(sha256.clone(), library.clone());
            tracing::debug!(plugin, path = %path.display(), sha256, "component compiled");
            return Ok(Opened { library, sha256 });
        }
        let copy = private_copy(&bytes, &sha256).map_err(|e| refuse(format!("cannot stage a private copy: {e}")))?;
        let loaded = NativeLibrary::load(plugin, &copy);
        // The mapping outlives the file; removing it now leaves nothing behind.
        let _ = std::fs::remove_file(&copy);
        let library = loaded.map_err(|e| match e {
            HostError::PluginLoad { reason, .. } => refuse(reason),
            other => other,
        })?;
        let library = Code::Native(library.with_path(path));
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

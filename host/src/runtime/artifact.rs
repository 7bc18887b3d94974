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
//! needed); the same content is compiled once. A Python file is only hashed
//! here: every instance executes it afresh (see `runtime::python`), so a
//! changed file or config always gives a new namespace.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::{Executor, native::NativeLibrary, python::PythonCode, wasm::WasmComponent};
use crate::{error::HostError, manifest::{PluginKind, PluginSpec}};
use covet_plugin_api::Phases;

/// Builds loaded by this process, by content hash, plus the hash of each
/// artifact path as of its last change (so an unchanged file is not re-read).
#[derive(Default)]
pub struct LibraryCache {
    by_hash: HashMap<String, Code>,
    hashes: HashMap<PathBuf, (FileId, String)>,
}

/// What identifies one version of a file without reading it: a rewrite or a
/// replacement changes the inode, the size, or the modification times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// A loaded plugin build, of either kind.
#[derive(Clone)]
pub enum Code {
    /// A native library.
    Native(NativeLibrary),
    /// A compiled WASM component.
    Wasm(WasmComponent),
    /// A Python file and the form it is used in.
    Python(PythonCode),
}

impl Code {
    /// The phases the build implements.
    pub fn phases(&self) -> Phases {
        match self {
            Code::Native(library) => library.descriptor().phases,
            Code::Wasm(component) => component.phases(),
            Code::Python(code) => code.phases(),
        }
    }

    fn kind(&self) -> PluginKind {
        match self {
            Code::Native(_) => PluginKind::Native,
            Code::Wasm(_) => PluginKind::Wasm,
            Code::Python(code) => PluginKind::Python(code.form()),
        }
    }

    /// The same build, reported as loaded for the artifact at `path`.
    pub fn with_path(&self, path: &Path) -> Code {
        match self {
            Code::Native(library) => Code::Native(library.with_path(path)),
            Code::Wasm(component) => Code::Wasm(component.with_path(path)),
            Code::Python(code) => Code::Python(code.with_path(path)),
        }
    }

    /// Makes a live instance for manifest entry `spec` (runs its `init`);
    /// relative paths in a native plugin's config resolve against `base_dir`.
    pub fn instantiate(&self, spec: &PluginSpec, base_dir: &Path) -> Result<Box<dyn Executor>, HostError> {
        match self {
            Code::Native(library) => {
                let services = super::services::for_plugin(spec)
                    .map_err(|reason| HostError::PluginInit { plugin: spec.name.clone(), reason: format!("host services: {reason}") })?;
                Ok(Box::new(library.instantiate_with(&spec.name, &spec.config.to_string(), base_dir, Some(services))?))
            }
            Code::Wasm(component) => component.instantiate(spec),
            Code::Python(code) => code.instantiate(spec),
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
        let unreadable = |e: std::io::Error| refuse(format!("cannot read the artifact: {e}"));
        if let Some(sha256) = self.known_hash(path).map_err(unreadable)?
            && let Some(library) = self.by_hash.get(&sha256).filter(|code| code.kind() == kind)
        {
            return Ok(Opened { library: library.with_path(path), sha256 });
        }
        let id = FileId::of(path).map_err(unreadable)?;
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        self.hashes.insert(path.to_path_buf(), (id, sha256.clone()));
        if let Some(library) = self.by_hash.get(&sha256).filter(|code| code.kind() == kind) {
            return Ok(Opened { library: library.with_path(path), sha256 });
        }
        if let PluginKind::Python(form) = kind {
            let library = Code::Python(PythonCode::new(form, path));
            self.by_hash.insert(sha256.clone(), library.clone());
            return Ok(Opened { library, sha256 });
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

    /// The SHA-256 of the file at `path`, read only if the file changed
    /// since it was last hashed.
    pub fn hash(&mut self, path: &Path) -> std::io::Result<String> {
        if let Some(sha256) = self.known_hash(path)? {
            return Ok(sha256);
        }
        let id = FileId::of(path)?;
        let sha256 = sha256_of(path)?;
        self.hashes.insert(path.to_path_buf(), (id, sha256.clone()));
        Ok(sha256)
    }

    /// The hash recorded for `path` if the file has not changed since.
    fn known_hash(&self, path: &Path) -> std::io::Result<Option<String>> {
        let Some((id, sha256)) = self.hashes.get(path) else { return Ok(None) };
        Ok((FileId::of(path)? == *id).then(|| sha256.clone()))
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

/// Hashes the file at `path` (see [`LibraryCache::hash`]), streaming
/// it rather than holding it in memory.
fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
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
    // No fsync: only this process reads the copy, through the page cache.
    file.write_all(bytes)?;
    Ok(path)
}

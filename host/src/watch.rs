//! `covet host --watch`: reloads what changes on disk.
//!
//! Watches the manifest and every plugin artifact and, after holding their
//! events back for [`DEBOUNCE`] (a write's many events become one), asks
//! the control plane to apply the change: a changed manifest is reloaded
//! whole ([`ControlPlane::reload_manifest`], which also picks up changed
//! artifacts); otherwise each plugin whose artifact changed is reloaded
//! ([`ControlPlane::reload_plugin`]) unless the file's hash is the one
//! already live.
//!
//! Builds and editors replace files by rename (cargo, vim), which ends an
//! inode watch, so the watcher watches each file's *directory*
//! (non-recursively) and filters by path. A file caught half-written (`cp`
//! writes in place) may fail to load: the control plane refuses it, the old
//! instance keeps serving, and the write's last event retries. The set of
//! watched paths follows the control plane's events, so a manifest reload or
//! an admin swap to another path moves the watch with it.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode,
    event::{AccessKind, AccessMode, ModifyKind, RenameMode},
};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::{broadcast, mpsc, watch};

use crate::control::{self, ControlPlane};

/// How long file events are held back and merged before they are acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches until `stop` turns true (the host's shutdown). Runs on the host's
/// (multi-threaded) runtime; a watcher that cannot start logs why and returns.
pub async fn run(control: Arc<ControlPlane>, mut stop: watch::Receiver<bool>) {
    let (tx, mut changes) = mpsc::unbounded_channel();
    let debouncer = match new_debouncer(DEBOUNCE, None, move |batch: DebounceEventResult| drop(tx.send(batch))) {
        Ok(debouncer) => debouncer,
        Err(e) => return tracing::warn!("--watch: cannot watch files, nothing will reload on change: {e}"),
    };
    let mut events = control.subscribe();
    let mut watched = Watched::new(debouncer, control.manifest_path());
    watched.refresh(&control).await;
    let dirs = watched.dirs.len();
    tracing::info!("--watch: watching the manifest and {} artifacts in {dirs} directories", watched.artifacts.len());
    loop {
        tokio::select! {
            batch = changes.recv() => match batch {
                Some(Ok(batch)) => on_change(&control, &watched, batch).await,
                Some(Err(errors)) => errors.iter().for_each(|e| tracing::warn!("--watch: file watch error: {e}")),
                None => return,
            },
            event = events.recv() => match event {
                Ok(event) if event.kind == control::EventKind::Failed => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => watched.refresh(&control).await,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = crate::server::stopped(&mut stop) => return,
        }
    }
}

/// What is watched: the manifest, each artifact and who uses it, and the
/// directories holding them.
struct Watched {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    manifest: PathBuf,
    /// Artifact path → the plugins loaded from it.
    artifacts: HashMap<PathBuf, Vec<String>>,
    dirs: HashSet<PathBuf>,
}

impl Watched {
    fn new(debouncer: Debouncer<RecommendedWatcher, RecommendedCache>, manifest: &Path) -> Watched {
        Watched { debouncer, manifest: absolute(manifest), artifacts: HashMap::new(), dirs: HashSet::new() }
    }

    /// Re-reads the artifact paths from the control plane and moves the
    /// directory watches to match.
    async fn refresh(&mut self, control: &ControlPlane) {
        self.artifacts.clear();
        for (name, path) in control.artifacts().await {
            self.artifacts.entry(absolute(&path)).or_default().push(name);
        }
        let wanted: HashSet<PathBuf> =
            self.artifacts.keys().chain([&self.manifest]).filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        for gone in self.dirs.difference(&wanted) {
            let _ = self.debouncer.unwatch(gone);
        }
        let mut now_watched = HashSet::with_capacity(wanted.len());
        for dir in wanted {
            if self.dirs.contains(&dir) || self.debouncer.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
                now_watched.insert(dir);
            } else {
                tracing::warn!("--watch: cannot watch {}; changes there will not reload", dir.display());
            }
        }
        self.dirs = now_watched;
    }

    /// The changed paths of a batch this watcher cares about: `None` when the
    /// manifest changed, else the changed artifacts and their plugins.
    fn affected(&self, batch: &[DebouncedEvent]) -> Option<BTreeSet<(String, PathBuf)>> {
        let paths = batch.iter().flat_map(|e| written(&e.event.kind, &e.event.paths));
        let mut affected = BTreeSet::new();
        for path in paths {
            if *path == self.manifest || self.manifest_resolves_through(path) {
                return None;
            }
            for name in self.artifacts.get(path).into_iter().flatten() {
                affected.insert((name.clone(), path.clone()));
            }
        }
        Some(affected)
    }
}

impl Watched {
    /// Whether the manifest is a symlink resolving through `path`, a symlink
    /// next to it: a Kubernetes ConfigMap volume (`plugins.yaml` ->
    /// `..data/plugins.yaml`), which the kubelet updates by renaming a new
    /// `..data` over the old one, so no event names the manifest itself.
    fn manifest_resolves_through(&self, path: &Path) -> bool {
        let (Ok(target), Some(dir)) = (std::fs::read_link(&self.manifest), self.manifest.parent()) else { return false };
        target.is_relative() && target.components().count() > 1 && target.components().next().is_some_and(|first| dir.join(first) == path)
    }
}

/// The paths an event leaves with new content. Opens and reads (which our
/// own loads cause) and removals change nothing to load; a writer closing
/// the file does; a rename counts for its destination only.
fn written<'a>(kind: &EventKind, paths: &'a [PathBuf]) -> &'a [PathBuf] {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => paths,
        EventKind::Access(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => &[],
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => paths.last().map(std::slice::from_ref).unwrap_or_default(),
        _ => paths,
    }
}

/// Applies one debounced batch of file changes.
async fn on_change(control: &ControlPlane, watched: &Watched, batch: Vec<DebouncedEvent>) {
    let Some(plugins) = watched.affected(&batch) else {
        return match control.reload_manifest().await {
            Ok(outcome) => tracing::info!(routes = outcome.routes, "--watch: manifest changed; reloaded"),
            Err(_) => tracing::warn!("--watch: manifest changed but was refused (see above); nothing changed"),
        };
    };
    for (name, path) in plugins {
        if !differs_from_live(control, &name, &path).await {
            continue;
        }
        match control.reload_plugin(&name).await {
            Ok(outcome) => tracing::info!(plugin = name, version = outcome.new_version, "--watch: artifact changed; reloaded"),
            Err(_) => tracing::warn!(
                plugin = name,
                "--watch: artifact changed but was refused (see above); the old instance keeps serving until the next change"
            ),
        }
    }
}

/// Whether the file at `path` now holds something other than what `name`
/// runs. An unreadable file (mid-rename, deleted) is left for the next event.
async fn differs_from_live(control: &ControlPlane, name: &str, path: &Path) -> bool {
    match control.artifact_changed(name).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::debug!(plugin = name, "--watch: {} holds the live build already; nothing to do", path.display());
            false
        }
        Err(e) => {
            tracing::debug!(plugin = name, "--watch: {} unreadable for now ({e}); waiting for the next change", path.display());
            false
        }
    }
}

/// `path` with its directory made absolute and canonical (the form notify
/// reports for files in a watched canonical directory); the file itself may
/// be missing or a symlink.
fn absolute(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return path.to_path_buf() };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use notify::{
        Event,
        event::{CreateKind, DataChange, RemoveKind},
    };

    use super::*;

    fn watched(dir: &Path) -> Watched {
        let debouncer = new_debouncer(DEBOUNCE, None, |_: DebounceEventResult| {}).expect("a watcher");
        let mut w = Watched::new(debouncer, &dir.join("plugins.yaml"));
        w.artifacts.insert(dir.join("libs/a.so"), vec!["a".into(), "a2".into()]);
        w.artifacts.insert(dir.join("libs/b.so"), vec!["b".into()]);
        w
    }

    fn event(kind: EventKind, paths: &[PathBuf]) -> DebouncedEvent {
        let event = paths.iter().fold(Event::new(kind), |e, p| e.add_path(p.clone()));
        DebouncedEvent::new(event, std::time::Instant::now())
    }

    fn written_to(dir: &Path, name: &str) -> DebouncedEvent {
        event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &[dir.join(name)])
    }

    fn names(affected: Option<BTreeSet<(String, PathBuf)>>) -> Vec<String> {
        affected.expect("artifacts, not the manifest").into_iter().map(|(name, _)| name).collect()
    }

    fn tmp() -> PathBuf {
        std::fs::canonicalize(std::env::temp_dir()).unwrap()
    }

    #[test]
    fn a_changed_artifact_affects_every_plugin_loaded_from_it() {
        let w = watched(&tmp());
        let batch = [written_to(&tmp(), "libs/a.so"), written_to(&tmp(), "libs/other")];
        assert_eq!(names(w.affected(&batch)), ["a", "a2"]);
    }

    #[test]
    fn a_changed_manifest_wins_over_artifacts() {
        let w = watched(&tmp());
        let batch = [written_to(&tmp(), "libs/b.so"), written_to(&tmp(), "plugins.yaml")];
        assert!(w.affected(&batch).is_none());
    }

    #[test]
    fn a_rename_counts_for_its_destination_only() {
        let (w, dir) = (watched(&tmp()), tmp());
        let replaced = event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &[dir.join("libs/.tmp"), dir.join("libs/b.so")]);
        assert_eq!(names(w.affected(&[replaced])), ["b"]);
        let moved_away = event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &[dir.join("libs/b.so"), dir.join("libs/b.old")]);
        assert!(names(w.affected(&[moved_away])).is_empty());
        let created = event(EventKind::Create(CreateKind::File), &[dir.join("libs/a.so")]);
        assert_eq!(names(w.affected(&[created])), ["a", "a2"]);
    }

    #[test]
    fn opens_reads_and_removals_reload_nothing_but_a_finished_write_does() {
        // The host's own reads of the manifest and artifacts must not loop.
        let (w, dir) = (watched(&tmp()), tmp());
        let opened = event(EventKind::Access(AccessKind::Open(AccessMode::Any)), &[dir.join("plugins.yaml")]);
        let read = event(EventKind::Access(AccessKind::Close(AccessMode::Read)), &[dir.join("libs/b.so")]);
        let removed = event(EventKind::Remove(RemoveKind::File), &[dir.join("libs/a.so")]);
        assert!(names(w.affected(&[opened, read, removed])).is_empty());
        let closed_after_writing = event(EventKind::Access(AccessKind::Close(AccessMode::Write)), &[dir.join("libs/b.so")]);
        assert_eq!(names(w.affected(&[closed_after_writing])), ["b"]);
    }

    #[test]
    fn paths_are_compared_with_a_canonical_directory() {
        let relative = absolute(Path::new("Cargo.toml"));
        assert_eq!(relative, std::fs::canonicalize(".").unwrap().join("Cargo.toml"));
        assert_eq!(absolute(&tmp().join("./missing.so")), tmp().join("missing.so"));
    }
}

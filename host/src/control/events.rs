//! Control-plane events: what `WatchEvents` streams and the log records.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::SwapOutcome;
use crate::error::HostError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A plugin went live for the first time (start-up or added by a reload).
    Loaded,
    /// A plugin's new instance replaced the old one.
    Swapped,
    /// A plugin was removed by a manifest reload.
    Removed,
    /// A swap, reload or manifest reload was refused; nothing changed.
    Failed,
    /// A manifest reload was applied.
    ManifestReloaded,
}

/// One control-plane event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// What happened.
    pub kind: EventKind,
    /// The plugin concerned, if one.
    pub plugin: Option<String>,
    /// The version now live, if one.
    pub version: Option<String>,
    /// The artifact hash now live, if one.
    pub sha256: Option<String>,
    /// A sentence for humans (the reason, for failures).
    pub message: String,
}

impl Event {
    /// A new event stamped now.
    pub fn new(kind: EventKind, plugin: Option<&str>, message: String) -> Event {
        let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
        Event { at, kind, plugin: plugin.map(str::to_owned), version: None, sha256: None, message }
    }

    /// A plugin went live with `version` from `sha256`.
    pub fn loaded(plugin: &str, version: &str, sha256: &str) -> Event {
        let mut e = Event::new(EventKind::Loaded, Some(plugin), format!("{plugin} {version} loaded"));
        e.version = Some(version.into());
        e.sha256 = Some(sha256.into());
        e
    }

    /// A swap succeeded.
    pub fn swapped(outcome: &SwapOutcome) -> Event {
        let SwapOutcome { plugin, old_version, new_version, took_ms, .. } = outcome;
        let message = format!("{plugin} swapped {old_version} → {new_version} in {took_ms:.2} ms");
        let mut e = Event::new(EventKind::Swapped, Some(plugin), message);
        e.version = Some(new_version.clone());
        e.sha256 = Some(outcome.sha256.clone());
        e
    }

    /// A change was refused.
    pub fn failed(plugin: Option<&str>, error: &HostError) -> Event {
        Event::new(EventKind::Failed, plugin, error.to_string())
    }

    /// Writes the event to the host log.
    pub fn log(&self) {
        let plugin = self.plugin.as_deref().unwrap_or("-");
        match self.kind {
            EventKind::Failed => tracing::warn!(plugin, "change refused, nothing changed: {}", self.message),
            _ => tracing::info!(plugin, kind = ?self.kind, "{}", self.message),
        }
    }
}

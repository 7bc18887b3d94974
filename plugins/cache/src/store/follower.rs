//! The purge follower: a background task that reads the purge log's
//! sequence number (`purge.seq`) every `purge_poll` and, when it moved,
//! the log (`purge.log`), and applies each ban it has not applied yet:
//! L1 entries it matches are dropped at once, a key ban's L2 entry is
//! deleted, and the ban is kept (24 h) to check L2 entries when read
//! (variants of a key, prefixes and tags cannot be found in L2 otherwise).
//!
//! Bans are applied by seq, not by "newer than the last seen": two admins
//! purging at once may append out of seq order. The writer bumps the counter
//! before it appends, so a counter ahead of the log is read again for a
//! while (the append is about to land) rather than taken as done.
//!
//! The first log read loads bans made before this instance started: they
//! are kept for L2 checks, and their L2 deletes were done by whoever was
//! running then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use covet_plugin_api::host::{Host, ServiceError, ServiceErrorKind, State};

use super::bans::{BAN_LIFETIME_MS, BanSet, parse_log};
use super::l1::L1;
use super::shared::{MAX_WRITES_IN_FLIGHT, Shared, bounded};
use super::{Ban, BanKind, now_ms};

/// The purge log's sequence counter.
pub(crate) const SEQ_KEY: &str = "purge.seq";
/// The purge log.
pub(crate) const LOG_KEY: &str = "purge.log";
/// The longest a purge-log read may take before the poll gives up (and tries next time).
pub(crate) const READ_LIMIT: Duration = Duration::from_secs(5);
/// How often skipped L2 writes are logged at most.
const SKIP_REPORT_EVERY: Duration = Duration::from_secs(60);
/// How many polls in a row re-read a log that is behind its counter.
pub(crate) const BEHIND_POLLS: u32 = 50;

/// The follower's state, owned by its task.
pub(crate) struct Follower {
    /// The host (timer, state calls).
    pub(crate) host: Host,
    /// The namespace holding the purge log.
    pub(crate) state: State,
    /// How often the counter is read.
    pub(crate) poll: Duration,
    /// The in-process tier to purge.
    pub(crate) l1: L1,
    /// The bans kept for checking, shared with the store.
    pub(crate) bans: Arc<RwLock<BanSet>>,
    /// The shared tier, when on (key bans delete there).
    pub(crate) shared: Option<Shared>,
    /// Set by [`super::Store::shutdown`].
    pub(crate) stop: Arc<AtomicBool>,
    /// The counter when the log was last read (`None`: not read yet).
    pub(crate) seen: Option<Option<i64>>,
    /// Polls left that re-read a log behind its counter.
    pub(crate) behind: u32,
    /// Whether a log read has loaded the bans from before this instance.
    pub(crate) loaded: bool,
    /// Whether the last poll failed (to log a failure once, and the recovery).
    pub(crate) failing: bool,
    /// Skipped L2 writes logged so far, and when last.
    skips_logged: (u64, Option<Instant>),
}

impl Follower {
    /// A follower that has read nothing yet.
    pub(crate) fn new(
        host: Host,
        state: State,
        poll: Duration,
        l1: L1,
        bans: Arc<RwLock<BanSet>>,
        shared: Option<Shared>,
    ) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        Follower {
            host,
            state,
            poll,
            l1,
            bans,
            shared,
            stop,
            seen: None,
            behind: 0,
            loaded: false,
            failing: false,
            skips_logged: (0, None),
        }
    }

    /// Polls every `poll` (the first poll ran at init) until the store shuts
    /// down or the host shuts the instance down.
    pub(crate) async fn run(mut self) {
        loop {
            if self.host.sleep(self.poll).await.is_err() || self.stop.load(Ordering::Acquire) {
                return;
            }
            let outcome = self.poll_once().await;
            self.report(outcome);
            self.report_skips(Instant::now());
        }
    }

    /// Logs L2 writes skipped (too many in flight) since the last report, at most once a minute.
    fn report_skips(&mut self, now: Instant) {
        let Some(shared) = &self.shared else { return };
        let (logged, at) = self.skips_logged;
        let skipped = shared.stats().writes_skipped;
        if skipped == logged || at.is_some_and(|at| now.duration_since(at) < SKIP_REPORT_EVERY) {
            return;
        }
        eprintln!(
            "cache: {} writes to the shared tier skipped since the last report ({MAX_WRITES_IN_FLIGHT} in flight: the state backend is slow or down); L1 kept them",
            skipped - logged
        );
        self.skips_logged = (skipped, Some(now));
    }

    /// Logs the first failure of a run of them, and the recovery.
    pub(crate) fn report(&mut self, outcome: Result<(), ServiceError>) {
        match outcome {
            Err(error) if !self.failing => {
                self.failing = true;
                eprintln!(
                    "cache: reading the purge log failed: {error}; purges wait until it answers"
                );
            }
            Ok(()) if self.failing => {
                self.failing = false;
                eprintln!("cache: the purge log answers again");
            }
            _ => {}
        }
    }

    /// One poll: the counter, and the log when the counter moved.
    pub(crate) async fn poll_once(&mut self) -> Result<(), ServiceError> {
        let seq = read_seq(&self.host, &self.state).await?;
        if self.seen == Some(seq) && self.behind == 0 {
            return Ok(());
        }
        let log = bounded(&self.host, READ_LIMIT, self.state.get(LOG_KEY)).await?;
        let bans = match log.as_deref().map(parse_log).transpose() {
            Ok(bans) => bans.unwrap_or_default(),
            Err(message) => {
                // A log this build cannot read: not read again until the counter moves.
                self.seen = Some(seq);
                self.behind = 0;
                return Err(ServiceError::new(ServiceErrorKind::Backend, message));
            }
        };
        self.behind = rereads_left(seq, &bans, self.seen == Some(seq), self.behind);
        self.seen = Some(seq);
        let initial = !self.loaded;
        self.loaded = true;
        self.apply(bans, initial).await;
        Ok(())
    }

    /// Applies the bans in `log` not applied yet; `initial`: the bans from
    /// before this instance started (no L2 deletes).
    async fn apply(&self, log: Vec<Ban>, initial: bool) {
        let fresh = record(&self.bans, log, now_ms());
        if fresh.is_empty() {
            return;
        }
        self.l1.purge(BanSet::of(&fresh));
        let Some(shared) = self.shared.as_ref().filter(|_| !initial) else {
            return;
        };
        for ban in fresh.iter().filter(|b| b.kind == BanKind::Key) {
            let _ = bounded(&self.host, READ_LIMIT, shared.delete_now(&ban.value)).await;
        }
    }
}

/// How many more polls should read the log again: while the counter `seq`
/// is ahead of the newest ban in `log` (a purge counted, its append not
/// landed yet), [`BEHIND_POLLS`] from when the counter moved (`same_seq`:
/// it did not since the last read); a writer that died between the two
/// steps is not waited for forever.
pub(crate) fn rereads_left(seq: Option<i64>, log: &[Ban], same_seq: bool, left: u32) -> u32 {
    let newest = log.iter().map(|b| b.seq).max().unwrap_or(0);
    let ahead = seq.is_some_and(|s| u64::try_from(s).unwrap_or(0) > newest);
    match (ahead, same_seq) {
        (false, _) => 0,
        (true, false) => BEHIND_POLLS,
        (true, true) => left.saturating_sub(1),
    }
}

/// Adds the bans of `log` younger than 24 h that `bans` does not know yet,
/// drops the ones that aged out, and returns the new ones.
pub(crate) fn record(bans: &RwLock<BanSet>, log: Vec<Ban>, now_ms: u64) -> Vec<Ban> {
    let oldest = now_ms.saturating_sub(BAN_LIFETIME_MS);
    let mut set = bans
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.prune(now_ms);
    log.into_iter()
        .filter(|ban| ban.at_ms >= oldest && set.insert(ban.clone()))
        .collect()
}

/// The purge counter (`None`: no purge yet).
pub(crate) async fn read_seq(host: &Host, state: &State) -> Result<Option<i64>, ServiceError> {
    let value = bounded(host, READ_LIMIT, state.get(SEQ_KEY)).await?;
    Ok(value.and_then(|v| {
        std::str::from_utf8(&v)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }))
}

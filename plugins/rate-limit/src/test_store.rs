//! [`MemoryStore`], an in-memory [`Store`] for the tests with the host's
//! in-process state semantics: `get` and `compare_and_set` atomic per key,
//! expired keys absent, and `eval` answering Unsupported (counted). Its
//! clock only moves when the test says so; a read can be made to pause
//! (so that concurrent decisions overlap), every swap to conflict, or every
//! call to fail as a dead store does.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use crate::shared::{BoxFuture, Store, StoreError, UNSUPPORTED};

/// 2023-11-14T22:13:20Z in microseconds: a realistic starting time.
pub(crate) const START_US: u64 = 1_700_000_000_000_000;

struct Entry {
    value: Vec<u8>,
    expires_at: u64,
}

/// The double; share it with `Arc` (the limiter takes `Box::new(arc.clone())`).
#[derive(Default)]
pub(crate) struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    now: AtomicU64,
    read_pause: Mutex<Option<Duration>>,
    always_conflict: AtomicBool,
    down: AtomicBool,
    evals: AtomicUsize,
    gets: AtomicUsize,
    conflicts: AtomicUsize,
}

impl MemoryStore {
    pub fn new() -> Arc<MemoryStore> {
        Arc::new(MemoryStore { now: AtomicU64::new(START_US), ..MemoryStore::default() })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }

    /// Each `get` sleeps `pause` after reading (a slow round trip).
    pub fn pause_reads(&self, pause: Duration) {
        *self.read_pause.lock().unwrap_or_else(PoisonError::into_inner) = Some(pause);
    }

    /// Every `compare_and_set` fails as if another request had swapped first.
    pub fn always_conflict(&self) {
        self.always_conflict.store(true, Ordering::SeqCst);
    }

    /// Every call fails with `connect`, as a dead store does.
    pub fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    pub fn evals(&self) -> usize {
        self.evals.load(Ordering::SeqCst)
    }

    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Swaps refused because the value had changed since it was read.
    pub fn conflicts(&self) -> usize {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// The live value of `key` as text, and how long until it expires.
    pub fn entry(&self, key: &str) -> Option<(String, Duration)> {
        let now = self.now.load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key).filter(|e| e.expires_at > now)?;
        Some((String::from_utf8_lossy(&entry.value).into_owned(), Duration::from_micros(entry.expires_at - now)))
    }

    /// Stores `value` without expiry (a bucket another writer left).
    pub fn put(&self, key: &str, value: &[u8]) {
        let entry = Entry { value: value.to_vec(), expires_at: u64::MAX };
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), entry);
    }

    fn check_up(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError { kind: "connect", message: "connecting to the state failed".into() }),
            false => Ok(()),
        }
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_up()?;
        self.gets.fetch_add(1, Ordering::SeqCst);
        let value = self.entry_bytes(key);
        if let Some(pause) = *self.read_pause.lock().unwrap_or_else(PoisonError::into_inner) {
            thread::sleep(pause);
        }
        Ok(value)
    }

    fn entry_bytes(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.now.load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|e| e.expires_at > now).map(|e| e.value.clone())
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, new: Vec<u8>, ttl: Duration) -> Result<bool, StoreError> {
        self.check_up()?;
        let now = self.now.load(Ordering::SeqCst);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let current = entries.get(key).filter(|e| e.expires_at > now).map(|e| e.value.as_slice());
        if current != expected || self.always_conflict.load(Ordering::SeqCst) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
            return Ok(false);
        }
        entries.insert(key.to_owned(), Entry { value: new, expires_at: now + ttl.as_micros() as u64 });
        Ok(true)
    }
}

impl Store for Arc<MemoryStore> {
    fn eval<'a>(
        &'a self,
        _: &'static str,
        _: &'a [String],
        _: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>> {
        self.evals.fetch_add(1, Ordering::SeqCst);
        let message = "eval (Lua scripts) is not supported by this backend".to_owned();
        let error = StoreError { kind: UNSUPPORTED, message };
        Box::pin(std::future::ready(Err(error)))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(std::future::ready(self.read(key)))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.swap(key, expected, new, ttl)))
    }

    /// A timer that never fires: every call of the double answers at once.
    fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }

    fn now_micros(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

//! The background thread that evicts idle buckets every few seconds, and
//! stops promptly when the plugin shuts down.

use std::{
    io,
    sync::{
        Mutex, PoisonError,
        mpsc::{self, RecvTimeoutError, Sender},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// A thread running `task` every `period` until [`Sweeper::stop`] (or drop).
pub(crate) struct Sweeper {
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sweeper {
    /// Starts the thread; the first run is one `period` from now.
    pub fn start(period: Duration, task: impl Fn() + Send + 'static) -> io::Result<Sweeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new().name("covet-rate-limit-sweeper".into()).spawn(move || {
            // Any message, or the sender going away, ends the loop at once.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                task();
            }
        })?;
        Ok(Sweeper { stop: Mutex::new(Some(stop)), thread: Mutex::new(Some(thread)) })
    }

    /// Wakes the thread, waits for it to finish and drops its `task`.
    /// Returns at once when already stopped.
    pub fn stop(&self) {
        drop(self.stop.lock().unwrap_or_else(PoisonError::into_inner).take());
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            // A panic in `task` already ended the thread; nothing is left to clean up.
            let _ = thread.join();
        }
    }

    /// Whether the thread is still alive.
    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Instant,
    };

    use super::*;

    #[test]
    fn runs_the_task_every_period() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let sweeper = Sweeper::start(Duration::from_millis(1), move || {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        sweeper.stop();
        assert!(runs.load(Ordering::Relaxed) >= 3);
    }

    #[test]
    fn stop_wakes_the_thread_joins_it_and_drops_the_task() {
        let state = Arc::new(());
        let held = Arc::clone(&state);
        let sweeper = Sweeper::start(Duration::from_secs(3600), move || drop(Arc::clone(&held))).unwrap();
        assert!(sweeper.is_running());
        assert_eq!(Arc::strong_count(&state), 2);
        sweeper.stop();
        assert!(!sweeper.is_running());
        assert_eq!(Arc::strong_count(&state), 1, "the thread's closure is gone, so the thread has ended");
        sweeper.stop();
    }
}

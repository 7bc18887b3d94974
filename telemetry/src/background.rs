//! A background task an exporter owns: spawned on the current tokio runtime
//! with a stop signal, stopped once (idempotently) within a time limit,
//! after which it is aborted. Shared by the span and the metrics exporters.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running task and how to stop it.
#[derive(Debug)]
pub(crate) struct Background {
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    timeout: Duration,
}

impl Background {
    /// Spawns `run(stopped)`; `stopped` resolves when [`Background::stop`] is called.
    pub(crate) fn spawn<F>(timeout: Duration, run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Background
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(stopped));
        Background { running: Mutex::new(Some((stop, task))), timeout }
    }

    /// Signals the task and waits for it at most the timeout, then aborts it. Idempotent.
    pub(crate) async fn stop(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some((stop, mut task)) = running else { return };
        let _ = stop.send(());
        if tokio::time::timeout(self.timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

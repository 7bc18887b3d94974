//! Timers and background work owned by one plugin instance ([`TaskSet`]).
//!
//! A plugin's periodic refresh or sweep is spawned into its instance's set;
//! every task is aborted when the instance shuts down (or the set is dropped),
//! so nothing outlives the plugin that started it. A task that panics is
//! logged with the plugin's name and does not take anything else down.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ServiceError;

/// The background tasks and timers of one plugin instance. Cheap to clone;
/// clones share the set.
#[derive(Clone)]
pub struct TaskSet {
    inner: Arc<Inner>,
}

struct Inner {
    plugin: Arc<str>,
    runtime: Handle,
    tasks: Mutex<Option<JoinSet<()>>>,
    closed: watch::Sender<bool>,
}

impl TaskSet {
    /// An empty set for plugin `plugin`, spawning on `runtime`.
    pub fn new(plugin: &str, runtime: Handle) -> TaskSet {
        let inner = Inner {
            plugin: Arc::from(plugin),
            runtime,
            tasks: Mutex::new(Some(JoinSet::new())),
            closed: watch::Sender::new(false),
        };
        TaskSet { inner: Arc::new(inner) }
    }

    /// Runs `fut` in the background until it finishes or the set shuts down.
    /// Fails with `ShutDown` once [`TaskSet::shutdown`] has run.
    pub fn spawn<F>(&self, fut: F) -> Result<(), ServiceError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let plugin = self.inner.plugin.clone();
        let guarded = async move {
            if let Err(panic) = AssertUnwindSafe(fut).catch_unwind().await {
                let message = panic_message(panic.as_ref());
                tracing::error!(plugin = %plugin, panic = %message, "a plugin background task panicked");
            }
        };
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(set) = tasks.as_mut() else { return Err(ServiceError::ShutDown) };
        while set.try_join_next().is_some() {}
        set.spawn_on(guarded, &self.inner.runtime);
        Ok(())
    }

    /// Waits `duration`; ends early with `ShutDown` when the set shuts down.
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = Result<(), ServiceError>> + Send + 'static {
        let mut closed = self.inner.closed.subscribe();
        async move {
            if *closed.borrow_and_update() {
                return Err(ServiceError::ShutDown);
            }
            tokio::select! {
                () = tokio::time::sleep(duration) => Ok(()),
                _ = closed.wait_for(|c| *c) => Err(ServiceError::ShutDown),
            }
        }
    }

    /// Tasks spawned and not yet finished.
    pub fn len(&self) -> usize {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(set) = tasks.as_mut() else { return 0 };
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every task, wakes every sleeper with `ShutDown` and refuses new tasks.
    pub fn shutdown(&self) {
        self.inner.closed.send_replace(true);
        let set = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut set) = set {
            set.abort_all();
            // Dropping a JoinSet aborts too; detach the handles so no runtime context is needed here.
            set.detach_all();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.send_replace(true);
        if let Some(mut set) = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            set.abort_all();
            set.detach_all();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        return (*s).to_owned();
    }
    panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "(a non-string panic)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[tokio::test]
    async fn shutdown_aborts_running_tasks_and_refuses_new_ones() {
        let set = TaskSet::new("p", Handle::current());
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        set.spawn(async move {
            let _flag = flag;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
        .unwrap();
        started_rx.await.unwrap();
        assert_eq!(set.len(), 1);
        set.shutdown();
        for _ in 0..1000 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(dropped.load(Ordering::SeqCst), "the task's future was not dropped");
        assert!(matches!(set.spawn(async {}), Err(ServiceError::ShutDown)));
    }

    #[tokio::test]
    async fn sleep_ends_with_shutdown() {
        let set = TaskSet::new("p", Handle::current());
        let sleeper = tokio::spawn(set.sleep(Duration::from_secs(3600)));
        tokio::task::yield_now().await;
        set.shutdown();
        assert!(matches!(sleeper.await.unwrap(), Err(ServiceError::ShutDown)));
        assert!(matches!(set.sleep(Duration::ZERO).await, Err(ServiceError::ShutDown)));
    }

    #[tokio::test]
    async fn a_panicking_task_does_not_stop_the_others() {
        let set = TaskSet::new("p", Handle::current());
        let ran = Arc::new(AtomicUsize::new(0));
        set.spawn(async { panic!("boom") }).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let r = ran.clone();
        set.spawn(async move {
            r.fetch_add(1, Ordering::SeqCst);
            tx.send(()).unwrap();
        })
        .unwrap();
        rx.await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        set.spawn(async {}).unwrap();
    }
}

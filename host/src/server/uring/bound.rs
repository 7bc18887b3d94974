//! [`ThreadBound`]: a value that must stay on the thread that made it (an
//! io_uring stream: `Rc` inside, ops tied to that thread's ring), made
//! `Send` so hyper can serve it with HTTP/1.1 upgrades (hyper's `Upgraded`
//! boxes its IO as `dyn Io + Send`).
//!
//! # Safety
//!
//! `Send` alone lets the wrapper *move* to another thread; it is `Sync` only
//! when `T` is (never for `UringStream`), so no `&ThreadBound` is shared.
//! The inner value is reached in two places only, and both check the thread
//! first:
//!
//! - every `AsyncRead`/`AsyncWrite` poll: on a thread other than the owner's
//!   it returns an `io::Error` and never touches the inner value;
//! - `Drop`: on the owner's thread it drops the inner value; elsewhere it
//!   leaks it (`ManuallyDrop`, never dropped), so no `Rc` count is changed
//!   and no ring is touched off its thread (the socket stays open until the
//!   process exits; logged, as it is a bug in the caller).
//!
//! So every access to the `!Send` value happens on the thread that created
//! it, which is what `!Send` protects. The owner is a per-thread token from
//! a process-wide counter (never reused, unlike a thread-local's address),
//! cheaper to read on every poll than `std::thread::current()`.
//!
//! The host keeps the value home by design: an io_uring connection's
//! future runs on its thread (`tokio_uring::spawn`), and its tunnel task is
//! spawned on that thread's runtime ([`crate::service::ConnInfo::home`]).

use std::{
    cell::Cell,
    io,
    mem::ManuallyDrop,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The next thread token to hand out (0 means "none yet").
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's token, taken on first use (const-initialised, no
    /// destructor: readable even while the thread's locals are torn down).
    static TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// This thread's token, unique among all threads the process ever ran.
fn this_thread() -> u64 {
    TOKEN.with(|token| match token.get() {
        0 => {
            let fresh = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            token.set(fresh);
            fresh
        }
        known => known,
    })
}

/// `T`, usable only on the thread that wrapped it (see the module docs).
pub struct ThreadBound<T> {
    inner: ManuallyDrop<T>,
    owner: u64,
}

// SAFETY: the inner value is only reached on the owner's thread (polls check
// it; `Drop` leaks the value elsewhere), see the module docs.
unsafe impl<T> Send for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    /// Binds `inner` to the calling thread.
    pub fn new(inner: T) -> Self {
        ThreadBound { inner: ManuallyDrop::new(inner), owner: this_thread() }
    }

    /// Whether the calling thread is the owner.
    pub fn at_home(&self) -> bool {
        this_thread() == self.owner
    }
}

impl<T: Unpin> ThreadBound<T> {
    /// The inner value, or an error off its thread.
    fn get(self: Pin<&mut Self>) -> io::Result<Pin<&mut T>> {
        let this = self.get_mut();
        if !this.at_home() {
            return Err(io::Error::other("an io_uring stream was used off the thread that owns it"));
        }
        Ok(Pin::new(&mut *this.inner))
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if self.at_home() {
            // SAFETY: dropped once, here; `inner` is never used after.
            unsafe { ManuallyDrop::drop(&mut self.inner) }
        } else {
            tracing::error!("an io_uring stream was dropped off its thread; leaking it (its socket stays open)");
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ThreadBound<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(inner) => inner.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ThreadBound<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get() {
            Ok(inner) => inner.poll_write(cx, data),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(inner) => inner.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get() {
            Ok(inner) => inner.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{rc::Rc, sync::Arc, sync::atomic::AtomicBool};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Sets its flag when dropped; holds an `Rc` (never read) like a uring stream.
    struct Probe(#[allow(dead_code)] Rc<()>, Arc<AtomicBool>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn dropped_at_home_the_value_is_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        drop(ThreadBound::new(Probe(Rc::new(()), dropped.clone())));
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn dropped_elsewhere_the_value_is_leaked_untouched() {
        let dropped = Arc::new(AtomicBool::new(false));
        let bound = ThreadBound::new(Probe(Rc::new(()), dropped.clone()));
        std::thread::spawn(move || drop(bound)).join().unwrap();
        assert!(!dropped.load(Ordering::SeqCst), "never dropped off its thread");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn polled_at_home_it_passes_through_and_elsewhere_it_fails() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut bound = ThreadBound::new(a);
        bound.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        let away = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let err = rt.block_on(bound.write_all(b"x")).unwrap_err();
            let read = rt.block_on(bound.read(&mut [0u8; 4])).unwrap_err();
            (err.to_string(), read.to_string(), bound)
        });
        let (write_err, read_err, bound) = away.join().unwrap();
        assert!(write_err.contains("off the thread"), "{write_err}");
        assert!(read_err.contains("off the thread"), "{read_err}");
        assert!(bound.at_home(), "back home it works again");
    }
}

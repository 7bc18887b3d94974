//! A call made inside the future of the first field that needs it (no boxed,
//! shared future per call), its answer handed to every identical call of
//! the request that comes while it is in flight or after.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll, Waker},
};

use crate::call::{Answer, CallError};

/// One call of a request: its answer once made, and the fields waiting for it.
#[derive(Default)]
pub struct InFlight {
    answer: OnceLock<Answer>,
    waiters: Mutex<Vec<Waker>>,
}

impl InFlight {
    /// Runs `call` (the lead: the first field to need it) and hands its answer
    /// to the waiters. Dropped before the answer (the request cancelled), it
    /// hands them an error instead, so no waiter is left pending.
    pub async fn lead(&self, call: impl Future<Output = Answer>) -> Answer {
        let guard = Unanswered(self);
        let answer = call.await;
        self.finish(answer.clone());
        drop(guard);
        answer
    }

    /// The answer, once the lead has it.
    pub fn wait(self: Arc<Self>) -> Wait {
        Wait(self)
    }

    fn finish(&self, answer: Answer) {
        // Set before the waiters are taken: a waiter registering under the
        // lock either sees the answer or is taken and woken here.
        let _ = self.answer.set(answer);
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Answers the waiters with an error if the lead ends without an answer.
struct Unanswered<'a>(&'a InFlight);

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.0.answer.get().is_none() {
            let cancelled = CallError { code: "UPSTREAM_ERROR", message: "the call was cancelled".into(), status: None };
            self.0.finish(Err(cancelled));
        }
    }
}

/// A field waiting for the answer of an identical call in flight.
pub struct Wait(Arc<InFlight>);

impl Future for Wait {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        if let Some(answer) = self.0.answer.get() {
            return Poll::Ready(answer.clone());
        }
        let mut waiters = self.0.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(answer) = self.0.answer.get() {
            return Poll::Ready(answer.clone());
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use covet_plugin_api::testing::block_on;
    use futures_util::{FutureExt, future::join};

    use super::*;

    #[test]
    fn waiters_get_the_leads_answer_and_a_cancelled_lead_answers_an_error() {
        let flight = Arc::new(InFlight::default());
        let waiter = flight.clone().wait();
        let lead = flight.lead(async { Ok(Arc::new(serde_json::json!({ "id": 1 }))) });
        let (led, waited) = block_on(join(lead, waiter));
        assert_eq!(led.unwrap(), waited.unwrap());
        assert_eq!(*block_on(flight.clone().wait()).unwrap(), serde_json::json!({ "id": 1 }));

        let flight = Arc::new(InFlight::default());
        let mut waiter = flight.clone().wait();
        assert!((&mut waiter).now_or_never().is_none());
        let lead = flight.lead(std::future::pending());
        assert!(lead.now_or_never().is_none()); // polled once, then dropped
        assert_eq!(block_on(waiter).unwrap_err().message, "the call was cancelled");
    }
}

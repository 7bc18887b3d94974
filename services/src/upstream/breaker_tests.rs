//! Tests of the circuit breaker: slots, the FIFO wait, refusal, new limits.

use std::time::Duration;

use super::Breaker;
use crate::upstream::Circuit;

fn circuit(max_requests: usize, max_pending: usize) -> Circuit {
    Circuit { max_requests, max_pending, retry_after: Duration::from_secs(1) }
}

#[tokio::test]
async fn over_both_limits_is_refused_at_once_and_counted() {
    let breaker = std::sync::Arc::new(Breaker::new(&circuit(1, 1)));
    let slot = breaker.acquire().await.expect("slot");
    let queued = tokio::spawn({
        let breaker = breaker.clone();
        async move { breaker.acquire().await.is_ok() }
    });
    while breaker.pending() == 0 {
        tokio::task::yield_now().await;
    }
    let refused = breaker.acquire().await.expect_err("the queue is full");
    assert_eq!((refused.in_flight, refused.pending), (1, 1));
    assert_eq!(breaker.overloaded_total(), 1);
    drop(slot);
    assert!(queued.await.expect("task"), "the queued request ran");
    assert_eq!(breaker.in_flight(), 0);
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let breaker = std::sync::Arc::new(Breaker::new(&circuit(1, 10)));
    let slot = breaker.acquire().await.expect("slot");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..5 {
        let (queued, tx) = (breaker.clone(), tx.clone());
        tokio::spawn(async move {
            let permit = queued.acquire().await.expect("queued");
            tx.send(i).expect("send");
            drop(permit);
        });
        while breaker.pending() < i + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(slot);
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(rx.recv().await.expect("served"));
    }
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_cancelled_wait_leaves_the_queue() {
    let breaker = Breaker::new(&circuit(1, 1));
    let _slot = breaker.acquire().await.expect("slot");
    let timed_out = tokio::time::timeout(Duration::from_millis(1), breaker.acquire()).await;
    assert!(timed_out.is_err(), "no slot frees");
    assert_eq!(breaker.pending(), 0);
    assert!(breaker.acquire().now_or_never_pending(), "the queue has room again");
}

/// Polls the acquire once: `true` when it is waiting (queued), not refused.
trait PendingOnce {
    fn now_or_never_pending(self) -> bool;
}

impl<F: std::future::Future> PendingOnce for F {
    fn now_or_never_pending(self) -> bool {
        use futures_util::FutureExt;
        self.now_or_never().is_none()
    }
}

#[tokio::test]
async fn lowered_limits_retire_busy_slots_and_raised_ones_add() {
    let breaker = Breaker::new(&circuit(3, 0));
    let a = breaker.acquire().await.expect("1");
    let b = breaker.acquire().await.expect("2");
    breaker.set_limits(&circuit(1, 0));
    assert!(breaker.acquire().await.is_err(), "2 in flight over the new limit of 1");
    drop(a);
    assert!(breaker.acquire().await.is_err(), "1 still in flight, the limit is 1");
    drop(b);
    let c = breaker.acquire().await.expect("a slot under the new limit");
    assert!(breaker.acquire().await.is_err());
    breaker.set_limits(&circuit(2, 0));
    let _d = breaker.acquire().await.expect("the raised limit adds a slot");
    assert!(breaker.acquire().await.is_err());
    drop(c);
    assert_eq!(breaker.in_flight(), 1);
}

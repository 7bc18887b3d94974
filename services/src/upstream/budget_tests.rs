//! Tests of the retry budget, on an explicit clock.

use std::time::{Duration, Instant};

use super::RetryBudget;

#[test]
fn retries_are_a_share_of_requests() {
    let budget = RetryBudget::new(20.0, 0);
    let now = Instant::now();
    for _ in 0..100 {
        budget.on_request_at(now);
    }
    let allowed = (0..50).filter(|_| budget.try_retry_at(now)).count();
    assert_eq!(allowed, 20, "20% of 100 requests");
    assert_eq!(budget.retries_total(), 20);
    assert_eq!(budget.exhausted_total(), 30);
}

#[test]
fn the_minimum_per_second_is_always_there() {
    let budget = RetryBudget::new(20.0, 3);
    let now = Instant::now();
    let allowed = (0..100).filter(|_| budget.try_retry_at(now)).count();
    assert_eq!(allowed, 30, "3 per second over the 10 s window, without any request");
}

#[test]
fn deposits_and_withdrawals_expire_after_the_window() {
    let budget = RetryBudget::new(50.0, 0);
    let start = Instant::now();
    for _ in 0..10 {
        budget.on_request_at(start);
    }
    assert_eq!((0..10).filter(|_| budget.try_retry_at(start)).count(), 5);
    let later = start + Duration::from_secs(11);
    assert!(!budget.try_retry_at(later), "the deposits expired");
    for _ in 0..2 {
        budget.on_request_at(later);
    }
    assert!(budget.try_retry_at(later), "new deposits count, old withdrawals expired");
    assert!(!budget.try_retry_at(later));
}

#[test]
fn withdrawals_free_the_reserve_again_after_the_window() {
    let budget = RetryBudget::new(0.0, 1);
    let start = Instant::now();
    assert_eq!((0..20).filter(|_| budget.try_retry_at(start)).count(), 10);
    assert!(!budget.try_retry_at(start + Duration::from_secs(5)));
    assert!(budget.try_retry_at(start + Duration::from_secs(10)), "the first withdrawals expired");
}

#[test]
fn set_changes_the_share() {
    let budget = RetryBudget::new(10.0, 0);
    let now = Instant::now();
    budget.set(100.0, 0);
    budget.on_request_at(now);
    assert!(budget.try_retry_at(now));
    assert!(!budget.try_retry_at(now));
}

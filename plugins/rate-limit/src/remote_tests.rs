//! The GCRA script against a real redis-server (started per test on a unix
//! socket in a temporary directory), through the `redis` client crate: the
//! bucket arithmetic, the key's TTL, and three clients sharing one limit.

use std::{
    thread,
    time::{Duration, Instant},
};

use super::*;
use crate::test_redis::RedisServer;

/// One request through the script, as the plugin sends it.
fn check(conn: &mut redis::Connection, quota: &RemoteQuota, bucket: &str) -> Decision {
    let reply: Vec<i64> = redis::cmd("EVAL")
        .arg(SCRIPT)
        .arg(1)
        .arg(bucket)
        .arg(quota.args())
        .query(conn)
        .expect("the script failed");
    decision(&reply).unwrap()
}

fn per_hour(burst: u32) -> RemoteQuota {
    RemoteQuota::new(Duration::from_secs(3600), burst)
}

#[test]
fn quota_arguments_are_whole_microseconds() {
    assert_eq!(RemoteQuota::new(Duration::from_millis(10), 200).args(), ["10000", "200"]);
    assert_eq!(RemoteQuota::new(Duration::from_nanos(333_333_334), 3).args(), ["333334", "3"]);
    assert_eq!(RemoteQuota::new(Duration::from_nanos(10), 1).args(), ["1", "1"]);
}

#[test]
fn bucket_names_are_hash_tagged_per_instance_and_key() {
    assert_eq!(bucket_name("per-client", &Some("10.0.0.1".into())), "{per-client/10.0.0.1}");
    assert_eq!(bucket_name("per-client", &None), "{per-client}");
}

#[test]
fn replies_other_than_three_integers_are_errors() {
    assert_eq!(decision(&[1, 4, 0]), Ok(Decision::Allowed { remaining: 4 }));
    assert_eq!(decision(&[0, 0, 1_500_000]), Ok(Decision::Limited { wait: Duration::from_millis(1500) }));
    assert!(decision(&[1, 2]).unwrap_err().contains("expected 3 integers"));
    assert!(decision(&[7, 0, 0]).unwrap_err().contains("allowed=7"));
}

#[test]
fn counts_down_the_burst_then_limits_like_the_in_process_limiter() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    let quota = per_hour(3);
    assert_eq!(check(&mut conn, &quota, "{a}"), Decision::Allowed { remaining: 2 });
    assert_eq!(check(&mut conn, &quota, "{a}"), Decision::Allowed { remaining: 1 });
    assert_eq!(check(&mut conn, &quota, "{a}"), Decision::Allowed { remaining: 0 });
    let Decision::Limited { wait } = check(&mut conn, &quota, "{a}") else { panic!("fourth request allowed") };
    assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600), "{wait:?}");
    assert_eq!(check(&mut conn, &quota, "{b}"), Decision::Allowed { remaining: 2 }, "another bucket");
}

#[test]
fn the_key_holds_the_full_time_in_microseconds_and_expires_then() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    check(&mut conn, &per_hour(2), "{ttl}");
    let tat: String = redis::cmd("GET").arg("{ttl}").query(&mut conn).unwrap();
    assert!(tat.bytes().all(|b| b.is_ascii_digit()), "not a whole number: {tat}");
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap();
    let now = secs * 1_000_000 + micros;
    let ahead = tat.parse::<u64>().unwrap() - now;
    assert!(ahead > 3_590_000_000 && ahead <= 3_600_000_000, "TAT {ahead} µs ahead, expected one hour");
    let pttl: i64 = redis::cmd("PTTL").arg("{ttl}").query(&mut conn).unwrap();
    assert!(pttl > 3_590_000 && pttl <= 3_600_000, "PTTL {pttl}");
}

#[test]
fn a_refused_request_does_not_move_the_bucket() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    let quota = per_hour(1);
    check(&mut conn, &quota, "{r}");
    let before: String = redis::cmd("GET").arg("{r}").query(&mut conn).unwrap();
    assert!(matches!(check(&mut conn, &quota, "{r}"), Decision::Limited { .. }));
    let after: String = redis::cmd("GET").arg("{r}").query(&mut conn).unwrap();
    assert_eq!(before, after);
}

#[test]
fn three_clients_draw_from_one_bucket() {
    let redis = RedisServer::start();
    let quota = per_hour(5);
    let mut clients: Vec<_> = (0..3).map(|_| redis.connect()).collect();
    let mut admitted = 0;
    for round in 0..10 {
        for conn in &mut clients {
            if matches!(check(conn, &quota, "{shared}"), Decision::Allowed { .. }) {
                admitted += 1;
            }
        }
        assert!(admitted <= 5, "round {round}: {admitted} admitted from a bucket of 5");
    }
    assert_eq!(admitted, 5, "30 requests from three clients share one burst of 5");
}

#[test]
fn three_concurrent_clients_together_get_one_rate() {
    // 20/s with a burst of 20, hammered by three threads for about a second:
    // GCRA admits at most burst + rate x elapsed in total, not three times that.
    let redis = RedisServer::start();
    let quota = RemoteQuota::new(Duration::from_millis(50), 20);
    let started = Instant::now();
    let run_for = Duration::from_millis(1200);
    let admitted: u64 = thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let mut conn = redis.connect();
                let quota = &quota;
                scope.spawn(move || {
                    let mut admitted = 0;
                    while started.elapsed() < run_for {
                        if matches!(check(&mut conn, quota, "{fleet}"), Decision::Allowed { .. }) {
                            admitted += 1;
                        }
                    }
                    admitted
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let bound = 20.0 + 20.0 * elapsed;
    assert!((admitted as f64) <= bound + 1.0, "{admitted} admitted in {elapsed:.2} s, GCRA bound {bound:.1}");
    assert!(admitted > 20, "{admitted} admitted: the bucket never refilled");
}

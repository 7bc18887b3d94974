//! Load balancing: which endpoint of a set takes the next attempt.
//!
//! A [`Balancer`] is built once per endpoint set (from the weights and the
//! endpoints' ids) and picks by index through a [`View`] that says, for each
//! endpoint, whether it is usable now and how many requests it has in flight:
//!
//! - round robin: smooth weighted round robin (nginx's): every pick adds each
//!   usable endpoint's weight to its current score, takes the highest and
//!   subtracts the total; over a cycle each endpoint gets exactly its weight.
//! - least request: power of two choices: two weighted random picks, the one
//!   with fewer requests in flight wins.
//! - ring hash: Ketama-like ring, points proportional to weight; a key takes
//!   the first usable endpoint clockwise from its hash.
//! - Maglev: a 65,537-entry lookup table filled by each endpoint's
//!   permutation, weighted as Envoy does.
//!
//! Both hashing policies take an optional bounded load `f`: an endpoint whose
//! in-flight count is over `ceil(f × (total + 1) / n)` is skipped (the ring
//! walks on, Maglev rehashes). A request without a hash key is balanced
//! round robin. Hashes are local (FNV-1a with a splitmix64 finaliser): no crate.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::config::Balance;

/// Entries of a Maglev table (a prime).
pub(crate) const MAGLEV_TABLE_SIZE: usize = 65_537;
/// Ring points per unit of the smallest weight.
const RING_POINTS_PER_WEIGHT: u64 = 160;
/// Most points on a ring, whatever the weights.
const RING_MAX_POINTS: u64 = 1 << 20;

/// What a balancer may know about endpoint `i` now: `None` when it may not be
/// picked, else its requests in flight.
pub(crate) type View<'a> = &'a dyn Fn(usize) -> Option<u64>;

/// A 64-bit hash of `bytes` (FNV-1a, then splitmix64 to spread the bits).
pub(crate) fn hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random number (a per-thread splitmix64 stream seeded from the OS).
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u64));
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        mix(next)
    })
}

/// The picking state of one endpoint set.
pub(crate) enum Balancer {
    /// Smooth weighted round robin.
    RoundRobin(Wrr),
    /// Power of two choices over weighted random picks.
    LeastRequest { weights: Vec<u32> },
    /// A sorted ring of `(point, endpoint)`.
    Ring { ring: Vec<(u64, u32)>, bounded: Option<f64>, fallback: Wrr },
    /// A Maglev lookup table of endpoint indexes.
    Maglev { table: Vec<u32>, bounded: Option<f64>, fallback: Wrr },
}

impl Balancer {
    /// The balancer of `policy` over endpoints with these `(id, weight)`s.
    pub(crate) fn new(policy: &Balance, members: &[(String, u32)]) -> Balancer {
        let weights: Vec<u32> = members.iter().map(|(_, w)| (*w).max(1)).collect();
        match policy {
            Balance::RoundRobin => Balancer::RoundRobin(Wrr::new(weights)),
            Balance::LeastRequest => Balancer::LeastRequest { weights },
            Balance::RingHash { bounded_load, .. } => {
                Balancer::Ring { ring: build_ring(members), bounded: *bounded_load, fallback: Wrr::new(weights) }
            }
            Balance::Maglev { bounded_load, .. } => {
                Balancer::Maglev { table: build_maglev(members), bounded: *bounded_load, fallback: Wrr::new(weights) }
            }
        }
    }

    /// The endpoint for a request with hash `key` (hashing policies; `None`:
    /// round robin), among those `view` allows; `None` when none is usable.
    pub(crate) fn pick(&self, key: Option<u64>, view: View<'_>) -> Option<usize> {
        match self {
            Balancer::RoundRobin(wrr) => wrr.pick(view),
            Balancer::LeastRequest { weights } => p2c(weights, view),
            Balancer::Ring { ring, bounded, fallback } => match key {
                Some(key) => ring_pick(ring, fallback.weights.len(), key, *bounded, view),
                None => fallback.pick(view),
            },
            Balancer::Maglev { table, bounded, fallback } => match key {
                Some(key) => maglev_pick(table, fallback.weights.len(), key, *bounded, view),
                None => fallback.pick(view),
            },
        }
    }
}

/// Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer`).
pub(crate) struct Wrr {
    weights: Vec<u32>,
    current: Mutex<Vec<i64>>,
}

impl Wrr {
    fn new(weights: Vec<u32>) -> Wrr {
        let current = Mutex::new(vec![0; weights.len()]);
        Wrr { weights, current }
    }

    fn pick(&self, view: View<'_>) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, weight) in self.weights.iter().enumerate() {
            if view(i).is_none() {
                continue;
            }
            let weight = i64::from(*weight);
            current[i] += weight;
            total += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}

/// A weighted random usable endpoint.
fn weighted_random(weights: &[u32], view: View<'_>) -> Option<usize> {
    let total: u64 = weights.iter().enumerate().filter(|(i, _)| view(*i).is_some()).map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut r = random_u64() % total;
    for (i, w) in weights.iter().enumerate() {
        if view(i).is_none() {
            continue;
        }
        let w = u64::from(*w);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

/// Power of two choices: the less loaded of two weighted random picks.
fn p2c(weights: &[u32], view: View<'_>) -> Option<usize> {
    let a = weighted_random(weights, view)?;
    let b = weighted_random(weights, view)?;
    let (load_a, load_b) = (view(a).unwrap_or(u64::MAX), view(b).unwrap_or(u64::MAX));
    Some(if load_b < load_a { b } else { a })
}

/// The bound of bounded load: `ceil(f × (total + 1) / n)` over the usable endpoints.
fn load_bound(factor: Option<f64>, len: usize, view: View<'_>) -> Option<u64> {
    let factor = factor?;
    let (mut n, mut total) = (0u64, 0u64);
    for i in 0..len {
        if let Some(load) = view(i) {
            n += 1;
            total += load;
        }
    }
    if n == 0 {
        return None;
    }
    Some((factor * (total + 1) as f64 / n as f64).ceil() as u64)
}

/// Whether endpoint `i` may take the request under `bound`.
fn fits(view: View<'_>, i: usize, bound: Option<u64>) -> bool {
    match view(i) {
        None => false,
        Some(load) => bound.is_none_or(|b| load < b),
    }
}

/// The usable endpoint with the fewest requests in flight (the last resort of
/// bounded load).
fn least_loaded(len: usize, view: View<'_>) -> Option<usize> {
    (0..len).filter_map(|i| view(i).map(|load| (load, i))).min().map(|(_, i)| i)
}

fn build_ring(members: &[(String, u32)]) -> Vec<(u64, u32)> {
    let min_weight = members.iter().map(|(_, w)| u64::from((*w).max(1))).min().unwrap_or(1);
    let wanted: u64 = members.iter().map(|(_, w)| u64::from((*w).max(1)) * RING_POINTS_PER_WEIGHT / min_weight).sum();
    let scale = if wanted > RING_MAX_POINTS { RING_MAX_POINTS as f64 / wanted as f64 } else { 1.0 };
    let mut ring = Vec::new();
    for (index, (id, weight)) in members.iter().enumerate() {
        let points = (u64::from((*weight).max(1)) * RING_POINTS_PER_WEIGHT / min_weight) as f64 * scale;
        for point in 0..(points.round() as u64).max(1) {
            ring.push((hash64(format!("{id}-{point}").as_bytes(), 0), index as u32));
        }
    }
    ring.sort_unstable();
    ring
}

fn ring_pick(ring: &[(u64, u32)], len: usize, key: u64, bounded: Option<f64>, view: View<'_>) -> Option<usize> {
    if ring.is_empty() {
        return None;
    }
    let bound = load_bound(bounded, len, view);
    let start = ring.partition_point(|(point, _)| *point < key);
    for step in 0..ring.len() {
        let index = ring[(start + step) % ring.len()].1 as usize;
        if fits(view, index, bound) {
            return Some(index);
        }
    }
    least_loaded(len, view)
}

fn build_maglev(members: &[(String, u32)]) -> Vec<u32> {
    let size = MAGLEV_TABLE_SIZE as u64;
    if members.is_empty() {
        return Vec::new();
    }
    let max_weight = members.iter().map(|(_, w)| u64::from((*w).max(1))).max().unwrap_or(1);
    // (offset, skip, next, target weight) per endpoint.
    let mut entries: Vec<(u64, u64, u64, u64)> = members
        .iter()
        .map(|(id, _)| (hash64(id.as_bytes(), 1) % size, hash64(id.as_bytes(), 2) % (size - 1) + 1, 0, 0))
        .collect();
    let mut table = vec![u32::MAX; MAGLEV_TABLE_SIZE];
    let mut filled = 0;
    for iteration in 1u64.. {
        for (index, (_, weight)) in members.iter().enumerate() {
            let entry = &mut entries[index];
            if iteration * u64::from((*weight).max(1)) < entry.3 {
                continue;
            }
            entry.3 += max_weight;
            let mut slot = (entry.0 + entry.1 * entry.2) % size;
            while table[slot as usize] != u32::MAX {
                entry.2 += 1;
                slot = (entry.0 + entry.1 * entry.2) % size;
            }
            table[slot as usize] = index as u32;
            entry.2 += 1;
            filled += 1;
            if filled == MAGLEV_TABLE_SIZE {
                return table;
            }
        }
    }
    table
}

fn maglev_pick(table: &[u32], len: usize, key: u64, bounded: Option<f64>, view: View<'_>) -> Option<usize> {
    if table.is_empty() {
        return None;
    }
    let bound = load_bound(bounded, len, view);
    let mut hash = key;
    for attempt in 0..(4 * len as u64 + 8) {
        let index = table[(hash % MAGLEV_TABLE_SIZE as u64) as usize] as usize;
        if fits(view, index, bound) {
            return Some(index);
        }
        hash = mix(key ^ (attempt + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    least_loaded(len, view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::config::HashKey;

    fn members(weights: &[u32]) -> Vec<(String, u32)> {
        weights.iter().enumerate().map(|(i, w)| (format!("10.0.0.{i}:80"), *w)).collect()
    }

    fn all(_: usize) -> Option<u64> {
        Some(0)
    }

    #[test]
    fn smooth_wrr_gives_each_endpoint_its_weight_per_cycle_interleaved() {
        let balancer = Balancer::new(&Balance::RoundRobin, &members(&[5, 1, 1]));
        let picks: Vec<usize> = (0..7).map(|_| balancer.pick(None, &all).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence for 5,1,1");
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[balancer.pick(None, &all).unwrap()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn wrr_skips_unusable_endpoints() {
        let balancer = Balancer::new(&Balance::RoundRobin, &members(&[1, 1, 1]));
        let view = |i: usize| (i != 1).then_some(0);
        let picks: Vec<usize> = (0..6).map(|_| balancer.pick(None, &view).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 3);
        assert_eq!(balancer.pick(None, &|_| None), None);
    }

    #[test]
    fn p2c_prefers_the_idle_endpoint() {
        let balancer = Balancer::new(&Balance::LeastRequest, &members(&[1, 1]));
        let view = |i: usize| Some(if i == 0 { 10 } else { 0 });
        let idle = (0..1000).filter(|_| balancer.pick(None, &view) == Some(1)).count();
        // The busy one wins only when both picks land on it (~1/4).
        assert!(idle > 650, "idle endpoint picked {idle}/1000");
        let even = Balancer::new(&Balance::LeastRequest, &members(&[3, 1]));
        let heavy = (0..4000).filter(|_| even.pick(None, &all) == Some(0)).count();
        assert!((2700..3300).contains(&heavy), "weight 3 of 4 picked {heavy}/4000");
    }

    fn remap_share(policy: &Balance) -> f64 {
        let before = Balancer::new(policy, &members(&[1, 1, 1, 1, 1]));
        let kept: Vec<(String, u32)> =
            members(&[1, 1, 1, 1, 1]).into_iter().filter(|(id, _)| id != "10.0.0.2:80").collect();
        let after = Balancer::new(policy, &kept);
        let (mut moved, mut keys) = (0, 0);
        for k in 0..5000u64 {
            let key = hash64(&k.to_le_bytes(), 9);
            let first = before.pick(Some(key), &all).unwrap();
            assert_eq!(before.pick(Some(key), &all), Some(first), "same key, same endpoint");
            let second = &kept[after.pick(Some(key), &all).unwrap()].0;
            if first != 2 {
                keys += 1;
                if *second != format!("10.0.0.{first}:80") {
                    moved += 1;
                }
            }
        }
        moved as f64 / keys as f64
    }

    #[test]
    fn ring_and_maglev_keep_keys_when_an_endpoint_leaves() {
        for policy in [
            Balance::RingHash { key: HashKey::Path, bounded_load: None },
            Balance::Maglev { key: HashKey::Path, bounded_load: None },
        ] {
            let moved = remap_share(&policy);
            // Only the removed endpoint's keys (1/5) should move; allow some Maglev churn.
            assert!(moved < 0.05, "{policy:?}: {moved} of the other keys moved");
        }
    }

    #[test]
    fn hashing_spreads_keys_by_weight() {
        for policy in [
            Balance::RingHash { key: HashKey::Path, bounded_load: None },
            Balance::Maglev { key: HashKey::Path, bounded_load: None },
        ] {
            let balancer = Balancer::new(&policy, &members(&[1, 1, 2]));
            let mut counts = [0u32; 3];
            for k in 0..8000u64 {
                counts[balancer.pick(Some(hash64(&k.to_le_bytes(), 3)), &all).unwrap()] += 1;
            }
            assert!(counts.iter().all(|c| *c > 1200), "{policy:?}: {counts:?}");
            assert!(counts[2] > counts[0] && counts[2] > counts[1], "{policy:?}: {counts:?}");
        }
    }

    #[test]
    fn bounded_load_spills_a_hot_key() {
        for policy in [
            Balance::RingHash { key: HashKey::Path, bounded_load: Some(1.25) },
            Balance::Maglev { key: HashKey::Path, bounded_load: Some(1.25) },
        ] {
            let balancer = Balancer::new(&policy, &members(&[1, 1, 1, 1]));
            let key = hash64(b"/hot", 0);
            let home = balancer.pick(Some(key), &all).unwrap();
            // The home endpoint has 10 in flight, the others none: bound = ceil(1.25 × 11 / 4) = 4.
            let view = |i: usize| Some(if i == home { 10 } else { 0 });
            let spilled = balancer.pick(Some(key), &view).unwrap();
            assert_ne!(spilled, home, "{policy:?}");
            assert_eq!(balancer.pick(Some(key), &view), Some(spilled), "{policy:?}: the spill is stable");
            // Unbounded, the key stays home whatever the load.
            let unbounded =
                Balancer::new(&Balance::RingHash { key: HashKey::Path, bounded_load: None }, &members(&[1, 1, 1, 1]));
            let home = unbounded.pick(Some(key), &all).unwrap();
            assert_eq!(unbounded.pick(Some(key), &|i| Some(if i == home { 10 } else { 0 })), Some(home));
        }
    }

    #[test]
    fn hashing_without_a_key_is_round_robin() {
        let balancer =
            Balancer::new(&Balance::Maglev { key: HashKey::ClientIp, bounded_load: None }, &members(&[1, 1]));
        let picks: Vec<usize> = (0..4).map(|_| balancer.pick(None, &all).unwrap()).collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 2, "{picks:?}");
    }
}

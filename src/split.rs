//! Pure traffic-split arithmetic: no IO, no clocks, no Pingora.
//!
//! A route's traffic is divided into [`BUCKETS`] buckets of 0.01 % each. Every
//! request lands in one bucket, and each pool owns a contiguous run of
//! buckets, the shifted-to pool first. Two ways to land in a bucket:
//!
//! * **Sticky**: the user's key hashes to a fixed bucket ([`sticky_bucket`]).
//!   Because the `to` pool owns buckets `0..share×100`, raising its share only
//!   ever moves users from the old pool to the new one.
//! * **Sequence**: request *n* of the route lands in bucket
//!   `(n × stride) mod 10000` ([`spread`]) with a stride coprime to 10000 near
//!   the golden ratio. Any 10,000 consecutive requests visit every bucket
//!   exactly once, so each pool's share is exact over such a window, and the
//!   golden stride interleaves pools evenly inside it (a 1 % pool gets every
//!   ~100th request, not 100 in a row). One atomic counter per route is the
//!   only shared state, so the hot path takes no lock.
//!
//! Within a pool, backends are chosen the same way over their weights
//! ([`pick_weighted`]), skipping the ones that are down.

/// Buckets a route's traffic is divided into: 0.01 % each.
pub const BUCKETS: u32 = 10_000;

/// Turn relative weights into bucket counts that add up to exactly
/// [`BUCKETS`] (largest-remainder rounding). Non-finite or negative weights
/// count as zero; if nothing is positive, every count is zero.
pub fn to_buckets(weights: &[f64]) -> Vec<u32> {
    let clean: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 })
        .collect();
    let total: f64 = clean.iter().sum();
    if total <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = clean
        .iter()
        .map(|w| w / total * f64::from(BUCKETS))
        .collect();
    let mut counts: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let assigned: u32 = counts.iter().sum();
    let mut order: Vec<usize> = (0..exact.len()).filter(|i| clean[*i] > 0.0).collect();
    // Largest fractional part first; ties go to the earlier entry.
    order.sort_by(|a, b| {
        let fa = exact[*a] - exact[*a].floor();
        let fb = exact[*b] - exact[*b].floor();
        fb.partial_cmp(&fa)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    });
    for i in order
        .into_iter()
        .take(BUCKETS.saturating_sub(assigned) as usize)
    {
        counts[i] += 1;
    }
    counts
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A stride near `total × 0.618` that is coprime with `total`, so that
/// `n × stride mod total` walks every position once per `total` steps.
pub fn golden_stride(total: u64) -> u64 {
    if total <= 2 {
        return 1;
    }
    let mut s = ((total as f64) * 0.618_033_988_75).round() as u64;
    s = s.clamp(1, total - 1);
    while gcd(s, total) != 1 {
        s -= 1;
    }
    s
}

/// The stride for [`BUCKETS`], computed once.
pub const BUCKET_STRIDE: u64 = 6179;

/// Position of request `n` in `0..total`, using `stride` from [`golden_stride`].
#[inline]
pub fn spread(n: u64, total: u64, stride: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    ((n % total) * stride) % total
}

/// The bucket of the `n`-th request of a route without a sticky key.
#[inline]
pub fn sequence_bucket(n: u64) -> u32 {
    spread(n, u64::from(BUCKETS), BUCKET_STRIDE) as u32
}

/// The fixed bucket of a sticky key. Stable across processes and versions,
/// so every replica puts a user in the same bucket.
pub fn sticky_bucket(key: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV's low bits alone are poorly mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % u64::from(BUCKETS)) as u32
}

/// Choose an entry for `bucket` (in `0..BUCKETS`) among entries with the given
/// bucket counts, considering only those for which `available(i)` holds.
///
/// With every entry available, entry *i* owns the contiguous buckets after
/// those of entries `0..i`. Unavailable entries' buckets are shared out in
/// proportion to the others' counts (failover). `None` when nothing available
/// has a positive count.
pub fn pick_bucket(
    bucket: u32,
    counts: &[u32],
    available: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total: u64 = counts
        .iter()
        .enumerate()
        .filter(|(i, c)| **c > 0 && available(*i))
        .map(|(_, c)| u64::from(*c))
        .sum();
    if total == 0 {
        return None;
    }
    let scaled = u64::from(bucket.min(BUCKETS - 1)) * total / u64::from(BUCKETS);
    pick_position(scaled, counts, &available)
}

/// Choose among weighted entries for the `n`-th pick, skipping those for
/// which `available(i)` is false (weighted round robin over what is left).
pub fn pick_weighted(n: u64, weights: &[u32], available: impl Fn(usize) -> bool) -> Option<usize> {
    let total: u64 = weights
        .iter()
        .enumerate()
        .filter(|(i, w)| **w > 0 && available(*i))
        .map(|(_, w)| u64::from(*w))
        .sum();
    if total == 0 {
        return None;
    }
    let pos = spread(n, total, golden_stride(total));
    pick_position(pos, weights, &available)
}

fn pick_position(pos: u64, weights: &[u32], available: &impl Fn(usize) -> bool) -> Option<usize> {
    let mut acc = 0u64;
    for (i, w) in weights.iter().enumerate() {
        if *w == 0 || !available(i) {
            continue;
        }
        acc += u64::from(*w);
        if pos < acc {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up_and_round_fairly() {
        assert_eq!(to_buckets(&[80.0, 20.0]), vec![8000, 2000]);
        assert_eq!(to_buckets(&[99.5, 0.5]), vec![9950, 50]);
        assert_eq!(to_buckets(&[1.0, 1.0, 1.0]), vec![3334, 3333, 3333]);
        assert_eq!(to_buckets(&[0.0, 5.0]), vec![0, 10000]);
        assert_eq!(to_buckets(&[0.0, 0.0]), vec![0, 0]);
        assert_eq!(to_buckets(&[-1.0, f64::NAN, 2.0]), vec![0, 0, 10000]);
        assert_eq!(to_buckets(&[99.9, 0.1]), vec![9990, 10]);
    }

    #[test]
    fn bucket_stride_is_the_golden_stride() {
        assert_eq!(golden_stride(u64::from(BUCKETS)), BUCKET_STRIDE);
        for t in 1..500u64 {
            let s = golden_stride(t);
            assert!(t <= 2 || gcd(s, t) == 1, "stride {s} for {t}");
        }
    }

    #[test]
    fn sequence_visits_every_bucket_once_per_cycle() {
        let mut seen = vec![false; BUCKETS as usize];
        for n in 12_345..12_345 + u64::from(BUCKETS) {
            let b = sequence_bucket(n) as usize;
            assert!(!seen[b]);
            seen[b] = true;
        }
    }

    #[test]
    fn small_share_is_spread_out() {
        // A 1 % pool gets one request in every ~100, never a burst.
        let counts = [100, 9900];
        let mut last = None;
        let mut max_gap = 0;
        for n in 0..20_000u64 {
            if pick_bucket(sequence_bucket(n), &counts, |_| true) == Some(0) {
                if let Some(l) = last {
                    max_gap = max_gap.max(n - l);
                    assert!(n - l > 10, "burst at {n}");
                }
                last = Some(n);
            }
        }
        assert!(max_gap < 300, "gap {max_gap}");
    }

    #[test]
    fn failover_shares_out_in_proportion() {
        let counts = [2500, 5000, 2500];
        let mut hits = [0u32; 3];
        for b in 0..BUCKETS {
            hits[pick_bucket(b, &counts, |i| i != 0).unwrap()] += 1;
        }
        assert_eq!(hits, [0, 6667, 3333]);
        assert_eq!(pick_bucket(5, &counts, |_| false), None);
    }

    #[test]
    fn weighted_round_robin_skips_unavailable() {
        let w = [1, 2, 0, 1];
        let mut hits = [0u32; 4];
        for n in 0..400 {
            hits[pick_weighted(n, &w, |_| true).unwrap()] += 1;
        }
        assert_eq!(hits, [100, 200, 0, 100]);
        let mut hits = [0u32; 4];
        for n in 0..300 {
            hits[pick_weighted(n, &w, |i| i != 1).unwrap()] += 1;
        }
        assert_eq!(hits, [150, 0, 0, 150]);
        assert_eq!(pick_weighted(0, &[0, 0], |_| true), None);
    }
}

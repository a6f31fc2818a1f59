//! Property tests of the pure split core: accuracy over any 10,000
//! consecutive requests, and sticky monotonicity (raising the share of the
//! target pool only ever moves users towards it).
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use cutover::split::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_10000_consecutive_requests_split_exactly(
        weights in prop::collection::vec(0.0f64..100.0, 1..5),
        start in 0u64..10_000_000,
    ) {
        prop_assume!(weights.iter().any(|w| *w > 0.0));
        let buckets = to_buckets(&weights);
        prop_assert_eq!(buckets.iter().sum::<u32>(), BUCKETS);
        let mut hits = vec![0u32; weights.len()];
        for n in start..start + u64::from(BUCKETS) {
            hits[pick_bucket(sequence_bucket(n), &buckets, |_| true).unwrap()] += 1;
        }
        prop_assert_eq!(&hits, &buckets);
        let total: f64 = weights.iter().sum();
        for (h, w) in hits.iter().zip(&weights) {
            let share = f64::from(*h) / f64::from(BUCKETS) * 100.0;
            prop_assert!((share - w / total * 100.0).abs() <= 1.0);
        }
    }

    #[test]
    fn sticky_assignment_is_monotonic_in_the_share(
        low in 0.0f64..100.0,
        raise in 0.0f64..100.0,
        keys in prop::collection::vec(any::<u64>(), 1..200),
    ) {
        let high = (low + raise).min(100.0);
        let before = to_buckets(&[low, 100.0 - low]);
        let after = to_buckets(&[high, 100.0 - high]);
        for k in keys {
            let b = sticky_bucket(&k.to_le_bytes());
            let was_new = pick_bucket(b, &before, |_| true) == Some(0);
            let is_new = pick_bucket(b, &after, |_| true) == Some(0);
            prop_assert!(!was_new || is_new, "key {} moved back", k);
        }
    }

    #[test]
    fn sticky_keys_realise_the_share(share in 1.0f64..99.0) {
        let buckets = to_buckets(&[share, 100.0 - share]);
        let on_new = (0..10_000u32)
            .filter(|u| pick_bucket(sticky_bucket(format!("user-{u}").as_bytes()), &buckets, |_| true) == Some(0))
            .count();
        let realised = on_new as f64 / 100.0;
        prop_assert!((realised - share).abs() <= 1.5, "share {share} realised {realised}");
    }

    #[test]
    fn weighted_round_robin_is_exact_per_cycle(
        weights in prop::collection::vec(0u32..20, 1..6),
        start in 0u64..1_000_000,
    ) {
        let total: u32 = weights.iter().sum();
        prop_assume!(total > 0);
        let mut hits = vec![0u32; weights.len()];
        for n in start..start + u64::from(total) * 3 {
            hits[pick_weighted(n, &weights, |_| true).unwrap()] += 1;
        }
        let expect: Vec<u32> = weights.iter().map(|w| w * 3).collect();
        prop_assert_eq!(hits, expect);
    }
}

//! The migration plan's three formulas, as pure functions.
//!
//! - cost `C = C1 + C2` (C1 the system before, C2 the extra cost of
//!   migrating);
//! - performance `T = T1 × (1 − α) + T2 × α` (α: how far the migration
//!   has gone);
//! - loss `E = E1 × (1 − β) + E2 × β` (β: the share that has moved).
//!
//! cutover fills them from measurement: α = β = the share of the route's
//! traffic now on the new pool.

use serde::{Deserialize, Serialize};

/// `C = C1 + C2`.
pub fn cost(before: f64, migration: f64) -> f64 {
    before + migration
}

/// `X = X1 × (1 − share) + X2 × share`: the performance and loss formulas
/// are this one with their own figures.
pub fn blend(before: f64, after: f64, share: f64) -> f64 {
    before * (1.0 - share) + after * share
}

/// A blended figure with the numbers put in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// X1: the old pool's figure.
    pub before: f64,
    /// X2: the new pool's figure.
    pub after: f64,
    /// α (or β).
    pub share: f64,
    /// X.
    pub value: f64,
}

impl Blend {
    /// Put the numbers in.
    pub fn of(before: f64, after: f64, share: f64) -> Blend {
        Blend {
            before,
            after,
            share,
            value: blend(before, after, share),
        }
    }

    /// The formula with its numbers, as a line of text.
    pub fn text(&self, name: &str, unit: &str) -> String {
        format!(
            "{name} = {b}{unit} × (1 − {s}) + {a}{unit} × {s} = {v}{unit}",
            b = round(self.before),
            a = round(self.after),
            s = round(self.share),
            v = round(self.value),
        )
    }
}

/// A number as a person reads it: up to four decimals, no trailing zeros.
pub fn round(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's worked example, with the formulas as written. Two of its
    /// printed results do not follow from them: E = 7 (the formula gives
    /// 10 × 0.7 + 5 × 0.3 = 8.5) and T = 120 (the formula gives
    /// 100 × 0.8 + 150 × 0.2 = 110; 120 would need α = 0.4). The formulas
    /// are what is implemented.
    #[test]
    fn the_worked_example() {
        assert_eq!(cost(500_000.0, 200_000.0), 700_000.0);
        assert!((blend(100.0, 150.0, 0.2) - 110.0).abs() < 1e-9);
        assert!((blend(100.0, 150.0, 0.4) - 120.0).abs() < 1e-9);
        assert!((blend(10.0, 5.0, 0.3) - 8.5).abs() < 1e-9);
        let t = Blend::of(100.0, 150.0, 0.2);
        assert_eq!(t.text("T", ""), "T = 100 × (1 − 0.2) + 150 × 0.2 = 110");
        assert_eq!(
            Blend::of(10.0, 5.0, 0.3).text("E", "").rsplit(' ').next(),
            Some("8.5")
        );
    }

    #[test]
    fn the_ends_are_the_pools_own_figures() {
        assert_eq!(blend(3.0, 9.0, 0.0), 3.0);
        assert_eq!(blend(3.0, 9.0, 1.0), 9.0);
        assert_eq!(round(0.30000000000000004), "0.3");
        assert_eq!(round(2.0), "2");
    }
}

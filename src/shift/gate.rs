//! The metric gate: a pure verdict on the target pool's window figures.

use super::window::Figures;
use crate::config::GateConfig;
use std::time::Duration;

/// What the gate concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `None`: too few requests for a verdict; `Some(false)`: within limits;
    /// `Some(true)`: breach.
    pub breach: Option<bool>,
    /// The limits that were crossed, in words.
    pub reasons: Vec<String>,
    /// The target pool's figures.
    pub to: Figures,
    /// The source pool's figures.
    pub from: Figures,
    /// `to` p99 / `from` p99, when both are known.
    pub p99_ratio: Option<f64>,
}

impl Verdict {
    /// `pass`, `breach` or `no_verdict`, as `/status` and the report say it.
    pub fn word(&self) -> &'static str {
        match self.breach {
            None => "no_verdict",
            Some(false) => "pass",
            Some(true) => "breach",
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// The window the gate looks at: the last `hold`, at most a minute.
pub(crate) fn window_for(hold: Duration) -> Duration {
    hold.min(Duration::from_secs(60))
}

/// The mirror's word on a shift whose gate has `max_mirror_mismatch`,
/// from the mirror's comparisons in the window (a mismatch counted as an
/// error): `None` when the shift may start or advance, else why it waits —
/// too few answers compared (`min_requests`), or too many different.
pub(crate) fn mirror_hold(gate: &GateConfig, compared: Figures) -> Option<String> {
    let max = gate.max_mirror_mismatch?;
    let need = gate.min_requests.max(1);
    if compared.requests < need {
        return Some(format!(
            "waiting for the mirror: {} of {need} answers compared",
            compared.requests
        ));
    }
    if compared.error_rate() > max {
        return Some(format!(
            "mirror mismatch {:.2}% > {:.2}% ({} of {} answers differ)",
            compared.error_rate() * 100.0,
            max * 100.0,
            compared.errors,
            compared.requests
        ));
    }
    None
}

/// Judge `to` (and `from`, for the ratio) against `gate`.
pub(crate) fn evaluate(gate: &GateConfig, to: Figures, from: Figures) -> Verdict {
    let p99_ratio = match (to.p99, from.p99) {
        (Some(t), Some(f)) if !f.is_zero() => Some(t.as_secs_f64() / f.as_secs_f64()),
        _ => None,
    };
    let mut v = Verdict {
        breach: None,
        reasons: Vec::new(),
        to,
        from,
        p99_ratio,
    };
    if to.requests < gate.min_requests.max(1) {
        return v;
    }
    if let Some(max) = gate.max_error_rate {
        if to.error_rate() > max {
            v.reasons.push(format!(
                "error rate {:.2}% > {:.2}% ({} of {})",
                to.error_rate() * 100.0,
                max * 100.0,
                to.errors,
                to.requests
            ));
        }
    }
    if let (Some(max), Some(p99)) = (gate.max_p99, to.p99) {
        if p99 > max {
            v.reasons.push(format!("p99 {} > {}", ms(p99), ms(max)));
        }
    }
    if let (Some(max), Some(ratio)) = (gate.max_p99_ratio, p99_ratio) {
        if ratio > max {
            v.reasons.push(format!("p99 ratio {ratio:.2} > {max}"));
        }
    }
    v.breach = Some(!v.reasons.is_empty());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnBreach;

    fn gate() -> GateConfig {
        GateConfig {
            max_error_rate: Some(0.01),
            max_p99: Some(Duration::from_millis(300)),
            max_p99_ratio: Some(1.5),
            min_requests: 100,
            on_breach: OnBreach::Rollback,
            max_mirror_mismatch: None,
        }
    }

    #[test]
    fn the_mirror_holds_until_enough_answers_agree() {
        let mut g = gate();
        assert_eq!(mirror_hold(&g, figures(0, 0, 1)), None, "no mirror limit");
        g.max_mirror_mismatch = Some(0.01);
        let few = mirror_hold(&g, figures(99, 0, 1)).expect("too few");
        assert!(few.contains("99 of 100"), "{few}");
        let bad = mirror_hold(&g, figures(200, 3, 1)).expect("1.5 % differ");
        assert!(bad.contains("1.50% > 1.00%"), "{bad}");
        assert_eq!(mirror_hold(&g, figures(200, 2, 1)), None, "1 % is within");
    }

    fn figures(requests: u64, errors: u64, p99_ms: u64) -> Figures {
        Figures {
            requests,
            errors,
            p99: Some(Duration::from_millis(p99_ms)),
        }
    }

    #[test]
    fn no_verdict_below_min_requests() {
        let v = evaluate(&gate(), figures(99, 99, 5000), figures(1000, 0, 10));
        assert_eq!(v.breach, None);
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn within_limits_passes() {
        let v = evaluate(&gate(), figures(1000, 10, 100), figures(1000, 0, 100));
        assert_eq!(v.breach, Some(false));
    }

    #[test]
    fn each_limit_breaches_on_its_own() {
        let v = evaluate(&gate(), figures(1000, 11, 100), figures(1000, 0, 100));
        assert_eq!(v.breach, Some(true));
        assert!(
            v.reasons[0].starts_with("error rate 1.10% > 1.00%"),
            "{:?}",
            v.reasons
        );
        let v = evaluate(&gate(), figures(1000, 0, 500), figures(1000, 0, 400));
        assert_eq!(v.reasons, vec!["p99 500.0ms > 300.0ms".to_string()]);
        let v = evaluate(&gate(), figures(1000, 0, 200), figures(1000, 0, 100));
        assert_eq!(v.reasons, vec!["p99 ratio 2.00 > 1.5".to_string()]);
        assert_eq!(v.p99_ratio, Some(2.0));
    }

    #[test]
    fn window_is_hold_capped_at_a_minute() {
        assert_eq!(window_for(Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(
            window_for(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
    }
}

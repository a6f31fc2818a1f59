//! Validation of `[routes.shift]` and `[routes.shift.gate]`.

use super::raw::*;
use super::validate::Validator;
use super::*;
use serde_spanned::Spanned;

impl Validator<'_> {
    pub(super) fn shift(
        &self,
        s: &Spanned<RawShift>,
        field: &str,
        split: &[SplitEntry],
        pools: &[PoolConfig],
    ) -> Result<ShiftConfig, ConfigError> {
        let raw = s.get_ref();
        let in_split = |p: usize| split.iter().any(|e| e.pool == p);
        let to = self.pool_ref(&raw.to, &format!("{field}.to"), pools)?;
        if !in_split(to) {
            return Err(self.r.at(
                raw.to.span(),
                format!("{field}.to"),
                format!("pool {:?} is not in the route's split", raw.to.get_ref()),
            ));
        }
        let from = match &raw.from {
            Some(f) => {
                let from = self.pool_ref(f, &format!("{field}.from"), pools)?;
                if !in_split(from) || from == to {
                    return Err(self.r.at(
                        f.span(),
                        format!("{field}.from"),
                        "must be another pool of the route's split",
                    ));
                }
                from
            }
            None => {
                let others: Vec<usize> =
                    split.iter().map(|e| e.pool).filter(|p| *p != to).collect();
                match others.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(self.r.at(
                            s.span(),
                            format!("{field}.from"),
                            "needed when the split does not have exactly two pools",
                        ))
                    }
                }
            }
        };
        let steps_field = format!("{field}.steps");
        if raw.steps.get_ref().is_empty() {
            return Err(self
                .r
                .at(raw.steps.span(), &steps_field, "give at least one step"));
        }
        let mut steps: Vec<f64> = Vec::new();
        for step in raw.steps.get_ref() {
            let v = *step.get_ref();
            let span = self.span_or(step.span(), raw.steps.span());
            if !(0.0..=100.0).contains(&v) {
                return Err(self
                    .r
                    .at(span, &steps_field, format!("step {v} is outside 0–100")));
            }
            if let Some(prev) = steps.last() {
                if v <= *prev {
                    return Err(self.r.at(
                        span,
                        &steps_field,
                        format!("steps must increase, but {v} follows {prev}"),
                    ));
                }
            }
            steps.push(v);
        }
        let hold = self.duration(&raw.hold, &format!("{field}.hold"))?;
        let start_at = match &raw.start_at {
            Some(t) => Some(
                humantime::parse_rfc3339_weak(t.get_ref().trim()).map_err(|_| {
                    self.r.at(
                        t.span(),
                        format!("{field}.start_at"),
                        format!(
                            "{:?} is not an RFC 3339 UTC time like \"2026-12-01T02:00:00Z\"",
                            t.get_ref()
                        ),
                    )
                })?,
            ),
            None => None,
        };
        let gate = raw
            .gate
            .as_ref()
            .map(|g| self.gate(g, &format!("{field}.gate")))
            .transpose()?;
        Ok(ShiftConfig {
            to,
            from,
            steps,
            hold,
            start_at,
            gate,
        })
    }

    /// An optional fraction `field.key` in 0..=1.
    fn fraction(
        &self,
        v: &Option<Spanned<f64>>,
        field: &str,
        key: &str,
    ) -> Result<Option<f64>, ConfigError> {
        match v {
            Some(v) if !(0.0..=1.0).contains(v.get_ref()) => Err(self.r.at(
                v.span(),
                format!("{field}.{key}"),
                "must be a fraction from 0 to 1 (0.01 means 1 %)",
            )),
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        }
    }

    fn gate(&self, g: &Spanned<RawGate>, field: &str) -> Result<GateConfig, ConfigError> {
        let raw = g.get_ref();
        let max_error_rate = self.fraction(&raw.max_error_rate, field, "max_error_rate")?;
        let max_p99 = raw
            .max_p99
            .as_ref()
            .map(|d| self.duration(d, &format!("{field}.max_p99")))
            .transpose()?;
        let max_p99_ratio = match &raw.max_p99_ratio {
            Some(v) if !(v.get_ref().is_finite() && *v.get_ref() > 0.0) => {
                return Err(self.r.at(
                    v.span(),
                    format!("{field}.max_p99_ratio"),
                    "must be a positive number",
                ))
            }
            Some(v) => Some(*v.get_ref()),
            None => None,
        };
        let max_mirror_mismatch =
            self.fraction(&raw.max_mirror_mismatch, field, "max_mirror_mismatch")?;
        if max_error_rate.is_none()
            && max_p99.is_none()
            && max_p99_ratio.is_none()
            && max_mirror_mismatch.is_none()
        {
            return Err(self.r.at(
                g.span(),
                field,
                "a gate needs at least one of max_error_rate, max_p99, max_p99_ratio, max_mirror_mismatch",
            ));
        }
        let min_requests = match &raw.min_requests {
            Some(v) => self.int_in(v, &format!("{field}.min_requests"), 0..=1_000_000_000)? as u64,
            None => 100,
        };
        let on_breach = match raw.on_breach.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "rollback")) => OnBreach::Rollback,
            Some((_, "pause")) => OnBreach::Pause,
            Some((s, other)) => {
                return Err(self.r.at(
                    s.span(),
                    format!("{field}.on_breach"),
                    format!("{other:?} is not \"rollback\" or \"pause\""),
                ))
            }
        };
        Ok(GateConfig {
            max_error_rate,
            max_p99,
            max_p99_ratio,
            min_requests,
            on_breach,
            max_mirror_mismatch,
        })
    }
}

//! Validation of `[report]` and the pools' `cost` tables: the figures the
//! migration report prices the migration with. All optional; amounts are
//! finite and not negative.

use super::raw::*;
use super::validate::Validator;
use super::*;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

impl Validator<'_> {
    fn amount(&self, v: &Option<Spanned<f64>>, field: &str) -> Result<Option<f64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(x) if x.get_ref().is_finite() && *x.get_ref() >= 0.0 => Ok(Some(*x.get_ref())),
            Some(x) => Err(self.r.at(x.span(), field, "must be a number, 0 or more")),
        }
    }

    pub(super) fn report(
        &self,
        raw: Option<&Spanned<RawReport>>,
        pools: &BTreeMap<String, Spanned<RawPool>>,
    ) -> Result<ReportSettings, ConfigError> {
        let mut out = ReportSettings {
            currency: "USD".into(),
            ..ReportSettings::default()
        };
        if let Some(r) = raw {
            let r = r.get_ref();
            if let Some(c) = &r.currency {
                let code = c.get_ref().trim();
                if code.is_empty()
                    || code.len() > 8
                    || !code.chars().all(|ch| ch.is_ascii_alphanumeric())
                {
                    return Err(self.r.at(
                        c.span(),
                        "report.currency",
                        "a currency code such as \"EUR\" or \"CNY\"",
                    ));
                }
                out.currency = code.to_string();
            }
            out.cost_before = self.amount(&r.cost_before, "report.cost_before")?;
            out.migration_cost = self.amount(&r.migration_cost, "report.migration_cost")?;
            out.failure_cost = self.amount(&r.failure_cost, "report.failure_cost")?;
        }
        for (name, pool) in pools {
            let Some(cost) = &pool.get_ref().cost else {
                continue;
            };
            let field = format!("pools.{name}.cost");
            let c = cost.get_ref();
            let cost = PoolCost {
                per_hour: self
                    .amount(&c.per_hour, &format!("{field}.per_hour"))?
                    .unwrap_or(0.0),
                per_million_requests: self
                    .amount(
                        &c.per_million_requests,
                        &format!("{field}.per_million_requests"),
                    )?
                    .unwrap_or(0.0),
            };
            out.pool_costs.push((name.clone(), cost));
        }
        Ok(out)
    }
}

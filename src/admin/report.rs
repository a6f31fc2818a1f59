//! `GET /report` and `GET /report.svg`: the migration report and its chart.

use super::AdminResponse;
use crate::control::Control;
use serde_json::Value;

/// The report as JSON.
pub(super) fn json(control: &Control) -> AdminResponse {
    let doc = crate::migration::build(control, &control.history);
    AdminResponse::json(200, serde_json::to_value(doc).unwrap_or(Value::Null))
}

/// The report's chart.
pub(super) fn svg(control: &Control) -> AdminResponse {
    let doc = crate::migration::build(control, &control.history);
    AdminResponse {
        status: 200,
        content_type: "image/svg+xml",
        headers: Vec::new(),
        body: crate::migration::svg::render(&doc).into_bytes(),
    }
}

//! The demo's view of the mirror: event lines when it first finds a
//! difference and when the shift waits for it or may go on, and the
//! panel's line of figures.

use crate::control::Control;
use crate::mirror::Diff;

/// The demo route's mirror figures and last mismatches.
fn demo_mirror(control: &Control) -> Option<(crate::mirror::Figures, Vec<Diff>)> {
    let snap = control.snapshot();
    let m = snap.routes.first()?.mirror.as_ref()?;
    Some((m.state.figures(), m.state.recent()))
}

/// A mismatch in a few words.
pub(crate) fn describe(d: &Diff) -> String {
    let what = match (d.kind, &d.header, &d.path) {
        ("header", Some(h), _) => format!("header {h}"),
        ("body", _, Some(p)) => format!("body at {p}"),
        ("status", _, _) => format!("status {} vs {}", d.primary_status, d.mirror_status),
        (k, _, _) => k.to_string(),
    };
    format!("{} {} {what}", d.method, d.target)
}

/// Turns the mirror's findings into event lines.
#[derive(Debug, Default)]
pub(crate) struct MirrorWatch {
    announced: bool,
    waiting: Option<String>,
}

impl MirrorWatch {
    /// Event lines for what changed since the last call.
    pub(crate) fn changes(&mut self, control: &Control) -> Vec<String> {
        let mut out = Vec::new();
        if let (false, Some((f, recent))) = (self.announced, demo_mirror(control)) {
            if let Some(d) = recent.first() {
                self.announced = true;
                out.push(format!(
                    "mirror: the cloud answers differently: {} (on-prem {}, cloud {}; noise learned: {})",
                    describe(d),
                    d.primary_status,
                    d.mirror_status,
                    noise(&f)
                ));
            }
        }
        let wait = control.route_control("demo").and_then(|rc| rc.mirror_wait);
        // A line when the shift starts or stops waiting, or waits for
        // another reason (too few answers yet, or too many differ).
        let kind = |w: &Option<String>| w.as_deref().map(|w| w.contains("mismatch"));
        if kind(&self.waiting) != kind(&wait) {
            match &wait {
                Some(w) => out.push(format!("shift waits: {w}")),
                None => out.push("the mirror's answers agree: the shift may go on".into()),
            }
        }
        self.waiting = wait;
        out
    }
}

fn noise(f: &crate::mirror::Figures) -> String {
    let n = &f.learned_noise;
    let all: Vec<&str> = n
        .json
        .iter()
        .chain(n.headers.iter())
        .map(String::as_str)
        .collect();
    if all.is_empty() {
        "none yet".into()
    } else {
        all.join(", ")
    }
}

/// The panel's mirror line, if the route mirrors.
pub(crate) fn line(control: &Control) -> Option<String> {
    let (f, _) = demo_mirror(control)?;
    Some(format!(
        "mirror: {} compared, {} differ ({:.1}%), {} dropped; noise: {}",
        f.compared,
        f.mismatched,
        f.mismatch_rate * 100.0,
        f.dropped,
        noise(&f)
    ))
}

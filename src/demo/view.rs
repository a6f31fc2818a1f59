//! Drawing the demo: a live panel on a terminal, plain lines otherwise.

use super::load::{LoadStats, Tally, Window};
use crate::clock::now_ms;
use crate::config::ShiftConfig;
use crate::control::{Control, RouteControl};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// One pool's row.
#[derive(Debug, Clone)]
pub(crate) struct PoolRow {
    /// Pool name.
    pub name: &'static str,
    /// Requests per second in the last interval.
    pub rate: f64,
    /// Error ratio in the last interval.
    pub error_rate: f64,
    /// p99 latency in the last interval.
    pub p99: Duration,
    /// "2/2 healthy" and the like.
    pub health: String,
}

/// What one frame shows.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Time since the start.
    pub elapsed: Duration,
    /// Total length.
    pub total: Duration,
    /// Share of the cloud pool in the route's split (0–1), as configured now.
    pub cloud_share: f64,
    /// The same after failover.
    pub cloud_effective: f64,
    /// Rows: onprem, cloud.
    pub pools: Vec<PoolRow>,
    /// Requests answered by the proxy itself in the interval.
    pub proxy_rate: f64,
    /// Recent events, oldest first.
    pub events: Vec<String>,
    /// The shift and its gate, in words.
    pub shift: String,
}

/// Turns shift state changes into event lines for the demo.
#[derive(Debug, Default)]
pub(crate) struct ShiftWatch {
    last: Option<(crate::shift::Phase, usize)>,
    /// The states seen, in order ("10%", "50%", "rolled back", …).
    pub history: Vec<String>,
}

impl ShiftWatch {
    /// Event lines for what changed since the last call.
    pub(crate) fn changes(&mut self, control: &Control) -> Vec<String> {
        let mut out = Vec::new();
        let Some((rc, cfg)) = demo_shift(control) else {
            return out;
        };
        let Some(state) = rc.shift else { return out };
        let now = (state.phase, state.step);
        if self.last == Some(now) {
            return out;
        }
        self.last = Some(now);
        if state.phase == crate::shift::Phase::Idle {
            // Not started yet (the mirror's lines say why).
            return out;
        }
        let share = state.share(&cfg).unwrap_or(0.0);
        let label = match state.phase {
            crate::shift::Phase::RolledBack => "rolled back (0%)".to_string(),
            crate::shift::Phase::Complete => format!("complete ({share}%)"),
            p => format!("{} {share}%", p.as_str()),
        };
        self.history.push(label.clone());
        match (&rc.last_verdict, state.phase) {
            (Some((_, v)), crate::shift::Phase::RolledBack) if v.breach == Some(true) => {
                out.push(format!(
                    "gate breached on cloud: {} -> shift {label}",
                    v.reasons.join("; ")
                ))
            }
            _ => out.push(format!("shift {label} on cloud")),
        }
        out
    }
}

/// The demo route's control state and its shift definition.
fn demo_shift(control: &Control) -> Option<(RouteControl, ShiftConfig)> {
    let rc = control.route_control("demo")?;
    let cfg = control.config().routes.first()?.shift.clone()?;
    Some((rc, cfg))
}

/// The shift's line and the gate's line of the panel.
fn shift_line(control: &Control) -> String {
    let Some((rc, cfg)) = demo_shift(control) else {
        return "no shift".into();
    };
    let Some(state) = rc.shift else {
        return "no shift".into();
    };
    let mut s = format!(
        "shift {} step {}/{} ({}% on cloud)",
        state.phase.as_str().replace('_', " "),
        state.step + 1,
        cfg.steps.len(),
        state.share(&cfg).unwrap_or(0.0)
    );
    match state.phase {
        _ if rc.mirror_wait.is_some() => {
            s.push_str(" - waiting for the mirror");
        }
        crate::shift::Phase::RolledBack | crate::shift::Phase::Paused => {
            s.push_str(" - waiting for the operator to resume");
        }
        _ => {
            if let Some(next) = state.next_step_at(&cfg) {
                let left = next
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                let _ = write!(s, ", next step in {}s", left.as_secs());
            }
        }
    }
    if let Some((_, v)) = &rc.last_verdict {
        let verdict = match v.breach {
            None => "waiting for requests",
            Some(false) => "pass",
            Some(true) => "BREACH",
        };
        let _ = write!(
            s,
            "\ngate: {verdict} (cloud {} req, {:.1}% errors, p99 {})",
            v.to.requests,
            v.to.error_rate() * 100.0,
            v.to.p99
                .map_or("-".into(), |d| format!("{}ms", d.as_millis()))
        );
    } else {
        s.push_str("\ngate: -");
    }
    if let Some(m) = super::mirror::line(control) {
        let _ = write!(s, "\n{m}");
    }
    s
}

/// The terminal's width in columns, if standard output is one.
pub(crate) fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills the `winsize` passed by pointer, which lives
    // for the whole call; nothing else is touched.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// The narrowest terminal the live panel is drawn on (narrower: plain lines).
pub(crate) const MIN_WIDTH: usize = 60;

/// `text` cut to fit `width` columns (one short of it, so that a full line
/// never wraps and scrolls the panel).
fn fit(text: &str, width: usize) -> String {
    let max = width.saturating_sub(1);
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Per-pool counters at the previous frame, to turn totals into rates.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Prev {
    requests: [u64; 3],
    errors: [u64; 3],
}

fn health_of(control: &Control, pool: &str) -> String {
    let snap = control.snapshot();
    let now = now_ms();
    let Some(p) = snap.pools.iter().find(|p| &*p.name == pool) else {
        return "-".into();
    };
    let up = p.backends.iter().filter(|b| b.state.available(now)).count();
    let statuses: Vec<&str> = p
        .backends
        .iter()
        .map(|b| b.state.status(now).as_str())
        .filter(|s| *s != "healthy")
        .collect();
    if statuses.is_empty() {
        format!("{up}/{} healthy", p.backends.len())
    } else {
        format!(
            "{up}/{} healthy ({})",
            p.backends.len(),
            statuses.join(", ")
        )
    }
}

/// Gather a frame from the proxy's state and the load generator's tallies.
pub(crate) fn gather(
    control: &Control,
    stats: &LoadStats,
    prev: &mut Prev,
    interval: Duration,
    elapsed: Duration,
    total: Duration,
    events: &[String],
) -> Frame {
    let snap = control.snapshot();
    let now = now_ms();
    let (mut cloud_share, mut cloud_effective) = (0.0, 0.0);
    if let Some(route) = snap.routes.first() {
        let eff = route.effective_shares(&snap.pools, now);
        for (i, slot) in route.slots.iter().enumerate() {
            if &*snap.pools[slot.pool].name == "cloud" {
                cloud_share = f64::from(route.buckets[i]) / f64::from(crate::split::BUCKETS);
                cloud_effective = eff[i];
            }
        }
    }
    let secs = interval.as_secs_f64().max(0.001);
    let tallies: [(&'static str, &Tally); 3] = [
        ("onprem", &stats.onprem),
        ("cloud", &stats.cloud),
        ("proxy", &stats.proxy),
    ];
    let mut rows = Vec::new();
    let mut proxy_rate = 0.0;
    for (i, (name, t)) in tallies.iter().enumerate() {
        let req = t.requests.load(Relaxed);
        let err = t.errors.load(Relaxed);
        let (dr, de) = (req - prev.requests[i], err - prev.errors[i]);
        prev.requests[i] = req;
        prev.errors[i] = err;
        let Window { p99, .. } = t.take_window();
        if *name == "proxy" {
            proxy_rate = dr as f64 / secs;
            continue;
        }
        rows.push(PoolRow {
            name,
            rate: dr as f64 / secs,
            error_rate: if dr == 0 { 0.0 } else { de as f64 / dr as f64 },
            p99,
            health: health_of(control, name),
        });
    }
    Frame {
        elapsed,
        total,
        cloud_share,
        cloud_effective,
        pools: rows,
        proxy_rate,
        events: events.iter().rev().take(6).rev().cloned().collect(),
        shift: shift_line(control),
    }
}

/// `mm:ss`
pub(crate) fn clock(d: Duration) -> String {
    format!("{:02}:{:02}", d.as_secs() / 60, d.as_secs() % 60)
}

fn bar(cloud: f64, width: usize) -> String {
    let filled = ((cloud.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("{}{}", "░".repeat(width - filled), "█".repeat(filled))
}

/// The panel drawn on a terminal `width` columns wide: every line fits.
pub(crate) fn panel(f: &Frame, width: usize) -> String {
    let s = panel_text(f, width);
    let mut out = String::new();
    for l in s.lines() {
        out.push_str(&fit(l, width));
        out.push('\n');
    }
    out
}

fn panel_text(f: &Frame, width: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "cutover demo  {} / {}   (Ctrl-C to stop)",
        clock(f.elapsed),
        clock(f.total)
    );
    // The bar takes what the numbers leave of the line.
    let bar_width = width.saturating_sub(58).clamp(10, 40);
    let _ = writeln!(
        s,
        "split  onprem [{}] cloud  {:5.1}% set, {:5.1}% effective",
        bar(f.cloud_effective, bar_width),
        f.cloud_share * 100.0,
        f.cloud_effective * 100.0
    );
    let _ = writeln!(s, "{}", f.shift);
    let _ = writeln!(
        s,
        "  {:<8} {:>8} {:>8} {:>9}   health",
        "pool", "req/s", "errors", "p99"
    );
    for p in &f.pools {
        let _ = writeln!(
            s,
            "  {:<8} {:>8.0} {:>7.1}% {:>7.1}ms   {}",
            p.name,
            p.rate,
            p.error_rate * 100.0,
            p.p99.as_secs_f64() * 1000.0,
            p.health
        );
    }
    let _ = writeln!(
        s,
        "  {:<8} {:>8.0}   (answered by cutover itself)",
        "proxy", f.proxy_rate
    );
    let _ = writeln!(s, "events:");
    for e in &f.events {
        let _ = writeln!(s, "  {e}");
    }
    for _ in f.events.len()..6 {
        let _ = writeln!(s);
    }
    s
}

/// One plain line (no terminal).
pub(crate) fn line(f: &Frame) -> String {
    let mut s = format!(
        "[{}] cloud share {:.1}% (effective {:.1}%)",
        clock(f.elapsed),
        f.cloud_share * 100.0,
        f.cloud_effective * 100.0
    );
    for p in &f.pools {
        let _ = write!(
            s,
            " | {} {:.0} req/s {:.1}% err p99 {:.1}ms {}",
            p.name,
            p.rate,
            p.error_rate * 100.0,
            p.p99.as_secs_f64() * 1000.0,
            p.health
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_fits_an_80_column_terminal() {
        let frame = Frame {
            elapsed: Duration::from_secs(12),
            total: Duration::from_secs(60),
            cloud_share: 0.5,
            cloud_effective: 0.5,
            pools: vec![PoolRow {
                name: "cloud",
                rate: 123.0,
                error_rate: 0.5,
                p99: Duration::from_millis(250),
                health: "2/2 healthy (ejected, ejected, unhealthy)".into(),
            }],
            proxy_rate: 1.0,
            events: vec!["00:12 gate breached on cloud: error rate 50.00% > 5.00% (60 of 120) -> shift rolled back (0%)".into()],
            shift: "shift rolled back step 2/3 (0% on cloud) - waiting for the operator to resume\ngate: BREACH (cloud 120 req, 50.0% errors, p99 250ms)".into(),
        };
        for width in [80, 120] {
            let p = panel(&frame, width);
            for l in p.lines() {
                assert!(l.chars().count() < width, "{width}: {l:?}");
            }
            // The same number of lines whatever happens, so a redraw covers
            // the previous frame exactly.
            assert_eq!(p.lines().count(), 14, "{p}");
        }
        assert!(panel(&frame, 80).contains("waiting for the operator to resume"));
    }
}

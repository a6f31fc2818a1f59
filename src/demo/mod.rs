//! `cutover demo`: a cutover on loopback with no setup.
//!
//! Starts two built-in pools of demo backends ("onprem" and "cloud"), the
//! real proxy (same code as `cutover run`) with an in-memory config, and a
//! load generator of 600 users, then draws what happens live: the split as a
//! progress bar, per-pool request rate, error rate, p99, health, the
//! mirror's comparisons and every shift transition. The story (see
//! `script.rs`): the mirror finds that the cloud answers differently and the
//! shift waits; the cloud is fixed, the answers agree, and the shift moves
//! 0 → 10 → 50 %; the cloud pool starts failing; the gate rolls back on its
//! own; the pool is fixed and the "operator" resumes; the shift runs to
//! 100 %. Ends by itself and prints a summary.

pub(crate) mod backends;
pub(crate) mod fleet;
pub(crate) mod load;
pub(crate) mod mirror;
pub(crate) mod script;
pub(crate) mod view;

use crate::app::signals::ChannelSignal;
use crate::app::{App, AppOptions};
use crate::config::Config;
use backends::Faults;
use load::LoadStats;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo's listeners (loopback, any free port) and timeouts, shared by
/// the fleet demo.
pub(crate) const LOOPBACK: &str = r#"
[proxy]
listen = ["127.0.0.1:0"]
threads = 1
connect_timeout = "500ms"
read_timeout = "5s"

[admin]
listen = "127.0.0.1:0"
"#;

/// Backend addresses as a TOML list's items.
pub(crate) fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn demo_config(onprem: &[SocketAddr], cloud: &[SocketAddr], hold: Duration) -> String {
    format!(
        r#"{LOOPBACK}
# What the migration report prices it with (`cutover report`).
[report]
currency = "CNY"
cost_before = 500000
migration_cost = 200000
failure_cost = 0.05

[pools.onprem]
backends = [{onprem}]
health = {{ path = "/healthz", interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }}
cost = {{ per_hour = 12.0 }}

[pools.cloud]
backends = [{cloud}]
health = {{ path = "/healthz", interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }}
cost = {{ per_hour = 4.0, per_million_requests = 0.2 }}

[[routes]]
name = "demo"
split = {{ onprem = 100, cloud = 0 }}
sticky = {{ header = "X-User-Id" }}

[routes.shift]
to = "cloud"
steps = [10, 50, 100]
hold = "{hold}ms"

[routes.shift.gate]
max_error_rate = 0.05
max_p99 = "250ms"
min_requests = 30
on_breach = "rollback"
# Neither start nor advance while more than 1 % of mirrored answers differ.
max_mirror_mismatch = 0.01

# Shadow traffic: a copy of 10 % of the requests goes to the cloud pool and
# its answer is compared with the on-prem one the user got.
[routes.mirror]
to = "cloud"
percent = 10
compare = {{ ignore_headers = ["x-served-by"], ignore_json = ["$.served_by"] }}
"#,
        onprem = list(onprem),
        cloud = list(cloud),
        hold = hold.as_millis()
    )
}

/// The shortest demo that tells its story in order (the gate needs enough
/// requests in a step's window before the incident).
const MIN_DURATION: Duration = Duration::from_secs(20);

/// Run the demo (or with `fleet`, the fleet demo) for `duration`; returns
/// the exit code.
pub(crate) fn run(duration: Duration, plain: bool, fleet: bool) -> i32 {
    let duration = if duration < MIN_DURATION && !fleet {
        println!(
            "(the demo needs at least {} to tell its story in order: running that long)",
            humantime::format_duration(MIN_DURATION)
        );
        MIN_DURATION
    } else {
        duration
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover demo: cannot start a runtime: {e}");
            return 1;
        }
    };
    let outcome = if fleet {
        rt.block_on(fleet::demo(duration))
    } else {
        rt.block_on(demo(duration, plain))
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cutover demo: {e}");
            1
        }
    }
}

async fn demo(duration: Duration, plain: bool) -> Result<(), String> {
    let onprem_faults = Arc::new(Faults::default());
    let cloud_faults = Arc::new(Faults::default());
    // The cloud starts with a bug only a comparison shows.
    cloud_faults.wrong_currency.store(true, Relaxed);
    let mut onprem = Vec::new();
    let mut cloud = Vec::new();
    for _ in 0..2 {
        let b = backends::spawn("onprem", Duration::from_millis(8), onprem_faults.clone())
            .await
            .map_err(|e| format!("cannot start a demo backend: {e}"))?;
        onprem.push(b.addr);
        let b = backends::spawn("cloud", Duration::from_millis(5), cloud_faults.clone())
            .await
            .map_err(|e| format!("cannot start a demo backend: {e}"))?;
        cloud.push(b.addr);
    }
    let text = demo_config(&onprem, &cloud, script::hold_for(duration));
    let config =
        Config::from_str_named(&text, std::path::Path::new("<demo>")).map_err(|e| e.to_string())?;
    let app = App::build(config, AppOptions::default()).map_err(|e| e.to_string())?;
    let proxy = *app
        .proxy_addrs
        .first()
        .ok_or("the demo proxy has no listener")?;
    let admin = app.admin_addr;
    let control = app.control();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn(move || {
        app.run(Box::new(ChannelSignal(tokio::sync::Mutex::new(stop_rx))));
    });

    let stats = Arc::new(LoadStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::run(proxy, 16, 600, stats.clone(), stop.clone()));

    // The live panel needs a terminal at least `MIN_WIDTH` wide; anything
    // else gets plain lines.
    let tty = std::io::stdout().is_terminal()
        && !plain
        && view::terminal_width().unwrap_or(80) >= view::MIN_WIDTH;
    let tick = Duration::from_millis(250);
    // Without a terminal, a status line every few seconds (events at once).
    let line_every = Duration::from_secs(5);
    let mut events = vec![format!(
        "00:00 proxy on http://{proxy} (admin http://{admin}), shift onprem -> cloud: 10, 50, 100 %, {} per step, once the mirror agrees",
        humantime::format_duration(script::hold_for(duration))
    )];
    let mut story = script::STORY.iter().peekable();
    let mut watcher = view::ShiftWatch::default();
    let mut mirror_watch = mirror::MirrorWatch::default();
    let started = Instant::now();
    let mut prev = view::Prev::default();
    let mut last = Instant::now();
    let mut drawn_lines = 0usize;
    let mut out = std::io::stdout();
    let mut printed_events = 0;
    while started.elapsed() < duration {
        tokio::time::sleep(tick.min(duration.saturating_sub(started.elapsed()))).await;
        let elapsed = started.elapsed();
        while let Some((at, step)) = story.peek() {
            if elapsed.as_secs_f64() < at * duration.as_secs_f64() {
                break;
            }
            let line = script::perform(*step, &cloud_faults, &control);
            events.push(format!("{} {line}", view::clock(elapsed)));
            story.next();
        }
        for line in mirror_watch
            .changes(&control)
            .into_iter()
            .chain(watcher.changes(&control))
        {
            events.push(format!("{} {line}", view::clock(elapsed)));
        }
        if tty {
            let interval = last.elapsed();
            last = Instant::now();
            let frame = view::gather(
                &control, &stats, &mut prev, interval, elapsed, duration, &events,
            );
            let width = view::terminal_width().unwrap_or(80).max(view::MIN_WIDTH);
            let panel = view::panel(&frame, width);
            // Move back over the previous frame and redraw it.
            if drawn_lines > 0 {
                let _ = write!(out, "\x1b[{drawn_lines}A");
            }
            for l in panel.lines() {
                let _ = writeln!(out, "\x1b[2K{l}");
            }
            drawn_lines = panel.lines().count();
            let _ = out.flush();
            continue;
        }
        for e in &events[printed_events..] {
            println!("{e}");
        }
        printed_events = events.len();
        if last.elapsed() >= line_every || started.elapsed() >= duration {
            let interval = last.elapsed();
            last = Instant::now();
            let frame = view::gather(
                &control, &stats, &mut prev, interval, elapsed, duration, &events,
            );
            println!("{}", view::line(&frame));
        }
    }
    stop.store(true, Relaxed);
    let _ = load.await;
    let _ = stop_tx.send(());
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    print_summary(&stats, started.elapsed(), &watcher);
    println!(
        "\ntry it yourself: config/local.toml splits a route between your own two backends (README, \"Quick start with your own backends\"). The demo ran this config, with its backends on loopback:\n"
    );
    for l in text.trim().lines() {
        println!("    {l}");
    }
    Ok(())
}

fn print_summary(stats: &LoadStats, elapsed: Duration, watcher: &view::ShiftWatch) {
    let on = stats.onprem.requests.load(Relaxed);
    let cl = stats.cloud.requests.load(Relaxed);
    let px = stats.proxy.requests.load(Relaxed);
    let errors = stats.onprem.errors.load(Relaxed)
        + stats.cloud.errors.load(Relaxed)
        + stats.proxy.errors.load(Relaxed);
    let total = (on + cl + px).max(1);
    println!(
        "summary: {} requests in {:.0}s: onprem {} ({:.1}%), cloud {} ({:.1}%), answered by the proxy {}; errors {} ({:.2}%)",
        on + cl + px,
        elapsed.as_secs_f64(),
        on,
        on as f64 * 100.0 / total as f64,
        cl,
        cl as f64 * 100.0 / total as f64,
        px,
        errors,
        errors as f64 * 100.0 / total as f64
    );
    println!(
        "shift: {}; sticky users who moved back to onprem: {} (only the rollback moves users back)",
        watcher.history.join(" -> "),
        stats.moved_back.load(Relaxed)
    );
}

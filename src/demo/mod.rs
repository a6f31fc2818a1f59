//! `cutover demo`: a cutover on loopback with no setup.
//!
//! Starts two built-in pools of demo backends ("onprem" and "cloud"), the
//! real proxy (same code as `cutover run`) with an in-memory config, and a
//! load generator of a few hundred users, then draws what happens live: the
//! split as a progress bar, per-pool request rate, error rate, p99 and
//! health. Ends by itself and prints a summary.

pub mod backends;
pub mod load;
pub mod view;

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

fn demo_config(onprem: &[SocketAddr], cloud: &[SocketAddr]) -> String {
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[proxy]
listen = ["127.0.0.1:0"]
threads = 1

[admin]
listen = "127.0.0.1:0"
connect_timeout = "500ms"
read_timeout = "5s"

[pools.onprem]
backends = [{onprem}]
health = {{ path = "/healthz", interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }}

[pools.cloud]
backends = [{cloud}]
health = {{ path = "/healthz", interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }}

[[routes]]
name = "demo"
split = {{ onprem = 80, cloud = 20 }}
sticky = {{ header = "X-User-Id" }}
"#,
        onprem = list(onprem),
        cloud = list(cloud)
    )
}

/// Run the demo for `duration`; returns the exit code.
pub fn run(duration: Duration, plain: bool) -> i32 {
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
    match rt.block_on(demo(duration, plain)) {
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
    let text = demo_config(&onprem, &cloud);
    let config =
        Config::from_str_named(&text, std::path::Path::new("<demo>")).map_err(|e| e.to_string())?;
    let app = App::build(config, AppOptions::default()).map_err(|e| e.to_string())?;
    let proxy = *app
        .proxy_addrs
        .first()
        .ok_or("the demo proxy has no listener")?;
    let control = app.control();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn(move || {
        app.run(Box::new(ChannelSignal(tokio::sync::Mutex::new(stop_rx))));
    });

    let stats = Arc::new(LoadStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::run(proxy, 16, 400, stats.clone(), stop.clone()));

    let tty = std::io::stdout().is_terminal() && !plain;
    let tick = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let events = vec![format!(
        "00:00 proxy on http://{proxy}, onprem {onprem:?}, cloud {cloud:?}"
    )];
    let started = Instant::now();
    let mut prev = view::Prev::default();
    let mut last = Instant::now();
    let mut drawn_lines = 0usize;
    let mut out = std::io::stdout();
    if !tty {
        println!("{}", events[0]);
    }
    while started.elapsed() < duration {
        tokio::time::sleep(tick.min(duration.saturating_sub(started.elapsed()))).await;
        let interval = last.elapsed();
        last = Instant::now();
        let frame = view::gather(
            &control,
            &stats,
            &mut prev,
            interval,
            started.elapsed(),
            duration,
            &events,
        );
        if tty {
            let panel = view::panel(&frame);
            // Move back over the previous frame and redraw it.
            if drawn_lines > 0 {
                let _ = write!(out, "\x1b[{drawn_lines}A");
            }
            for l in panel.lines() {
                let _ = writeln!(out, "\x1b[2K{l}");
            }
            drawn_lines = panel.lines().count();
            let _ = out.flush();
        } else {
            println!("{}", view::line(&frame));
        }
    }
    stop.store(true, Relaxed);
    let _ = load.await;
    let _ = stop_tx.send(());
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    print_summary(&stats, started.elapsed());
    Ok(())
}

fn print_summary(stats: &LoadStats, elapsed: Duration) {
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
}

//! `cutover demo --fleet`: three replicas and a real etcd on loopback.
//!
//! The replicas share the demo backends, except that edge-a reaches the
//! cloud pool by a path of its own. The story: the fleet shifts 10 → 50 %
//! together; edge-a's path to the cloud breaks; edge-a's gate breaches on its
//! own figures, it rolls back and writes that to etcd, and edge-b and edge-c
//! roll back from the watch within milliseconds; the path is fixed and the
//! operator resumes on edge-c, and all three resume. Needs `etcd` (Debian:
//! `etcd-server`; `scripts/demo.sh --fleet` installs it).

use super::backends::{self, Faults};
use super::load::{self, LoadStats};
use crate::app::signals::ChannelSignal;
use crate::app::{App, AppOptions};
use crate::config::Config;
use crate::control::Control;
use crate::shift::{Action, Phase};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMES: [&str; 3] = ["edge-a", "edge-b", "edge-c"];

/// An etcd child process, killed when dropped.
struct EtcdChild {
    child: Child,
    endpoint: String,
    _dir: std::path::PathBuf,
}

impl Drop for EtcdChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start_etcd() -> Result<EtcdChild, String> {
    let (client, peer) = (free_port()?, free_port()?);
    let dir = std::env::temp_dir().join(format!("cutover-demo-etcd-{}", std::process::id()));
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "demo", "--data-dir"])
        .arg(&dir)
        .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("demo={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("--fleet needs etcd ({e}); install Debian's etcd-server, or run scripts/demo.sh --fleet")
        })?;
    let etcd = EtcdChild {
        child,
        endpoint: client_url,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", client)).is_ok() {
            return Ok(etcd);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("etcd did not start within 15 s".into())
}

fn config(
    name: &str,
    etcd: &str,
    onprem: &[SocketAddr],
    cloud: &[SocketAddr],
    hold: Duration,
) -> String {
    format!(
        r#"{loopback}
[cluster]
etcd = ["{etcd}"]
name = "{name}"
prefix = "/cutover/demo"

[pools.onprem]
backends = [{onprem}]

[pools.cloud]
backends = [{cloud}]
outlier = false

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
min_requests = 20
on_breach = "rollback"
"#,
        loopback = super::LOOPBACK,
        onprem = super::list(onprem),
        cloud = super::list(cloud),
        hold = hold.as_millis()
    )
}

/// (phase, share) of the demo route on one replica.
fn state(control: &Control) -> Option<(Phase, f64)> {
    let config = control.config();
    let cfg = config.routes.first()?.shift.clone()?;
    let s = control.route_control("demo")?.shift?;
    Some((s.phase, s.share(&cfg).unwrap_or(0.0)))
}

fn describe(s: Option<(Phase, f64)>) -> String {
    match s {
        Some((Phase::RolledBack, _)) => "rolled back".into(),
        Some((p, share)) => format!("{} {share}%", p.as_str()),
        None => "-".into(),
    }
}

/// Run the fleet demo for `duration`.
pub(crate) async fn demo(duration: Duration) -> Result<(), String> {
    let etcd = tokio::task::spawn_blocking(start_etcd)
        .await
        .map_err(|e| e.to_string())??;
    let healthy = Arc::new(Faults::default());
    let broken = Arc::new(Faults::default());
    let spawn = |pool, faults: &Arc<Faults>| {
        backends::spawn(pool, Duration::from_millis(5), faults.clone())
    };
    let err = |e: std::io::Error| format!("cannot start a demo backend: {e}");
    let onprem = vec![spawn("onprem", &healthy).await.map_err(err)?.addr];
    let cloud = vec![spawn("cloud", &healthy).await.map_err(err)?.addr];
    // edge-a's own path to the cloud pool.
    let cloud_a = vec![spawn("cloud", &broken).await.map_err(err)?.addr];
    // Long enough that the breach lands on the 50 % step.
    let hold = Duration::from_millis(((duration.as_millis() as f64) * 0.25).max(2500.0) as u64);

    let mut controls = Vec::new();
    let mut proxies = Vec::new();
    let mut servers = Vec::new();
    for name in NAMES {
        let cl = if name == "edge-a" { &cloud_a } else { &cloud };
        let text = config(name, &etcd.endpoint, &onprem, cl, hold);
        let cfg = Config::from_str_named(&text, std::path::Path::new("<demo>"))
            .map_err(|e| e.to_string())?;
        let app = App::build(cfg, AppOptions::default()).map_err(|e| e.to_string())?;
        proxies.push(*app.proxy_addrs.first().ok_or("no listener")?);
        controls.push(app.control());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            app.run(Box::new(ChannelSignal(tokio::sync::Mutex::new(rx))))
        });
        servers.push((tx, t));
    }
    for c in &controls {
        if let Some(cluster) = &c.cluster {
            cluster.wait_first_sync(Duration::from_secs(10)).await;
        }
    }
    let started = Instant::now();
    let say = |line: String| println!("{:>5.1}s {line}", started.elapsed().as_secs_f64());
    say(format!(
        "etcd on {}; replicas edge-a http://{}, edge-b http://{}, edge-c http://{}; shift onprem -> cloud 10, 50, 100 % ({} per step)",
        etcd.endpoint, proxies[0], proxies[1], proxies[2], humantime::format_duration(hold)
    ));
    let stats = Arc::new(LoadStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = proxies
        .iter()
        .map(|p| tokio::spawn(load::run(*p, 4, 150, stats.clone(), stop.clone())))
        .collect();

    let mut last: Vec<Option<(Phase, f64)>> = vec![None; 3];
    let mut broke = false;
    let mut half_since: Option<Instant> = None;
    let mut resumed = false;
    let mut rolled_back_at: Vec<Option<Instant>> = vec![None; 3];
    let mut last_line = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t = started.elapsed().as_secs_f64() / duration.as_secs_f64();
        // The story follows the fleet (a loaded machine is slower): the
        // path breaks soon after every replica serves 50 %.
        let at_half = last
            .iter()
            .all(|s| s.is_some_and(|(p, share)| p == Phase::Running && share >= 50.0));
        if at_half && half_since.is_none() {
            half_since = Some(Instant::now());
        }
        let all_back = last
            .iter()
            .all(|s| matches!(s, Some((Phase::RolledBack, _))));
        if !broke
            && (half_since.is_some_and(|h| h.elapsed() >= Duration::from_millis(300)) || t >= 0.5)
        {
            broke = true;
            broken.error_permille.store(1000, Relaxed);
            say("incident: edge-a's path to the cloud pool breaks (edge-b and edge-c still reach it)".into());
        }
        if broke && !resumed && ((t >= 0.6 && all_back) || t >= 0.85) {
            resumed = true;
            broken.error_permille.store(0, Relaxed);
            say("edge-a's path is fixed".into());
            match controls[2].fleet_shift_action("demo", Action::Resume).await {
                Ok(_) => say(
                    "operator on edge-c: POST /routes/demo/shift/resume (for the whole fleet)"
                        .into(),
                ),
                Err(e) => say(format!("operator on edge-c: resume refused: {e}")),
            }
        }
        for (i, c) in controls.iter().enumerate() {
            let now = state(c);
            if now.map(|s| s.0) != last[i].map(|s| s.0) || now.map(|s| s.1) != last[i].map(|s| s.1)
            {
                if matches!(now, Some((Phase::RolledBack, _))) && rolled_back_at[i].is_none() {
                    rolled_back_at[i] = Some(Instant::now());
                }
                if last[i].is_some() {
                    say(format!("{}: {}", NAMES[i], describe(now)));
                }
                last[i] = now;
            }
        }
        if last_line.elapsed() >= Duration::from_secs(3) {
            last_line = Instant::now();
            let w = (stats.onprem.take_window(), stats.cloud.take_window());
            say(format!(
                "fleet: {} | onprem p99 {} ms, cloud p99 {} ms",
                NAMES
                    .iter()
                    .zip(&last)
                    .map(|(n, s)| format!("{n} {}", describe(*s)))
                    .collect::<Vec<_>>()
                    .join(", "),
                w.0.p99.as_millis(),
                w.1.p99.as_millis()
            ));
        }
    }
    stop.store(true, Relaxed);
    for l in loads {
        let _ = l.await;
    }
    for (tx, t) in servers {
        let _ = tx.send(());
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    let times: Vec<Instant> = rolled_back_at.iter().flatten().copied().collect();
    match (times.iter().min(), times.iter().max(), times.len()) {
        (Some(first), Some(last), 3) => println!(
            "summary: edge-a's breach rolled back all 3 replicas; first -> last rolled back in {} ms",
            last.duration_since(*first).as_millis()
        ),
        _ => println!("summary: {} of 3 replicas rolled back", times.len()),
    }
    let total = stats.onprem.requests.load(Relaxed)
        + stats.cloud.requests.load(Relaxed)
        + stats.proxy.requests.load(Relaxed);
    println!(
        "requests: {total} through the fleet; answered by onprem {}, by cloud {} (errors {})",
        stats.onprem.requests.load(Relaxed),
        stats.cloud.requests.load(Relaxed),
        stats.onprem.errors.load(Relaxed)
            + stats.cloud.errors.load(Relaxed)
            + stats.proxy.errors.load(Relaxed)
    );
    drop(etcd);
    Ok(())
}

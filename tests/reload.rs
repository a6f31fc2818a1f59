//! Hot reload with load running: 100 reloads lose nothing; invalid and
//! half-written files change nothing; editors' rename-on-save and Kubernetes
//! ConfigMap swaps apply exactly once; runtime state survives a reload.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::load::Load;
use common::*;
use cutover::config::text_hash;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(onprem: &Backend, cloud: &Backend, split: &str, extra: &str) -> String {
    format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n{extra}\n\
         [[routes]]\nname = \"api\"\nsplit = {split}\n",
        base_config(),
        addrs(&[onprem]),
        addrs(&[cloud])
    )
}

/// Write `text` to `path` the way careful tools do: a temp file, renamed over.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn status(proxy: &ProxyProc) -> serde_json::Value {
    let url = format!("http://{}/status", proxy.admin.unwrap());
    let r = get(&client(), &url, &[]).await.unwrap();
    serde_json::from_str(&r.body).unwrap()
}

/// Wait until the proxy serves the config with `text`; how long it took.
async fn wait_applied(proxy: &ProxyProc, text: &str) -> Duration {
    let want = text_hash(text);
    let start = Instant::now();
    let ok = eventually(Duration::from_secs(10), || async {
        status(proxy).await["config"]["hash"] == want.as_str()
    })
    .await;
    assert!(
        ok,
        "config never applied:\n{}",
        proxy.stderr.all().join("\n")
    );
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_lose_nothing() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let a = config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", "");
    let b = config(&onprem, &cloud, "{ onprem = 0, cloud = 100 }", "");
    let proxy = ProxyProc::start(&a);
    let load = Load::start(&proxy.url("/"), 4, &[]);
    let mut latencies = Vec::new();
    for i in 0..100 {
        let text = if i % 2 == 0 { &b } else { &a };
        write_atomic(&proxy.config_path, text);
        latencies.push(wait_applied(&proxy, text).await);
    }
    let result = load.finish().await;
    assert!(
        result.failed.is_empty(),
        "{} failed: {:?}",
        result.failed.len(),
        &result.failed[..result.failed.len().min(5)]
    );
    // The last file written was `a`: everything on on-prem now.
    let cl = client();
    for _ in 0..20 {
        assert_eq!(
            get(&cl, &proxy.url("/"), &[])
                .await
                .unwrap()
                .header("x-backend"),
            Some("onprem")
        );
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("cutover_config_reloads_total{result=\"ok\"} 101"),
        "{metrics}"
    );
    latencies.sort();
    eprintln!(
        "figures: {} requests during 100 reloads, 0 failed; write-to-serving (includes the admin poll): min {:?}, median {:?}, p90 {:?}, max {:?}",
        result.total(),
        latencies[0],
        latencies[50],
        latencies[90],
        latencies[99]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_half_written_files_change_nothing() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let good = config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", "");
    let proxy = ProxyProc::start(&good);
    let load = Load::start(&proxy.url("/"), 2, &[]);

    // A syntax error.
    write_atomic(&proxy.config_path, &good.replace("[[routes]]", "[[routes]"));
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(&proxy).await["config"]["last_reload"]["result"] == "error"
        })
        .await
    );
    let st = status(&proxy).await;
    let err = st["config"]["last_reload"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&format!("{}:", proxy.config_path.display())),
        "{err}"
    );
    assert_eq!(st["config"]["hash"], text_hash(&good));

    // A valid file naming an unknown pool.
    let unknown = good.replace(
        "split = { onprem = 100, cloud = 0 }",
        "split = { onprem = 100, clod = 0 }",
    );
    write_atomic(&proxy.config_path, &unknown);
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(&proxy).await["config"]["last_reload"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("unknown pool \"clod\""))
        })
        .await
    );

    // A file written in place, slowly: truncated inside a string, then
    // completed in pieces. Only the complete file is applied.
    let next = config(&onprem, &cloud, "{ onprem = 0, cloud = 100 }", "");
    let cut = next.find("backends = [\"").unwrap() + 14;
    std::fs::write(&proxy.config_path, &next[..cut]).unwrap();
    let rest = &next[cut..];
    let pieces = [
        &rest[..rest.len() / 3],
        &rest[rest.len() / 3..rest.len() * 2 / 3],
        &rest[rest.len() * 2 / 3..],
    ];
    for piece in pieces {
        tokio::time::sleep(Duration::from_millis(150)).await;
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&proxy.config_path)
            .unwrap();
        f.write_all(piece.as_bytes()).unwrap();
    }
    wait_applied(&proxy, &next).await;
    // Some load after the good file is in, so that the split it sets is
    // seen (the load could otherwise stop at the moment it applies).
    load.wait_answered(200).await;
    let result = load.finish().await;
    assert!(
        result.failed.is_empty(),
        "failed: {:?}",
        &result.failed[..result.failed.len().min(5)]
    );
    assert!(
        result.by_backend.get("cloud").copied().unwrap_or(0) > 0,
        "the good file was applied"
    );
    let metrics = proxy.metrics().await;
    let errors: u64 = metrics
        .lines()
        .find(|l| l.starts_with("cutover_config_reloads_total{result=\"error\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 2, "{metrics}");
    eprintln!(
        "figures: {} requests while 2+ bad files were refused, 0 failed",
        result.total()
    );
}

fn reloads(proxy: &ProxyProc) -> usize {
    proxy.stderr.count("config reloaded")
}

/// Exactly `n` reloads: wait (bounded) for the `n`th log line (the log is
/// read by another thread, so it may trail the reply), then make sure no
/// further one follows for a while (an absence can only be watched for).
async fn assert_reloads(proxy: &ProxyProc, n: usize) {
    let reached = proxy.stderr.wait_until(Duration::from_secs(5), |lines| {
        lines
            .iter()
            .filter(|l| l.contains("config reloaded"))
            .count()
            >= n
    });
    assert!(reached, "fewer than {n} reloads: {:?}", proxy.stderr.all());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reloads(proxy), n, "{:?}", proxy.stderr.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_on_save_is_applied_exactly_once() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", ""));
    let next = config(&onprem, &cloud, "{ onprem = 50, cloud = 50 }", "");
    // What vim and many editors do: write a swap file, rename it over.
    let swap = proxy.dir.path().join(".cutover.toml.swp");
    std::fs::write(&swap, &next).unwrap();
    std::fs::rename(&swap, &proxy.config_path).unwrap();
    wait_applied(&proxy, &next).await;
    assert_reloads(&proxy, 1).await;
    // Touching another file in the directory reloads nothing.
    std::fs::write(proxy.dir.path().join("notes.txt"), "hello").unwrap();
    assert_reloads(&proxy, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_is_applied_exactly_once() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let first = config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", "");
    let second = config(&onprem, &cloud, "{ onprem = 0, cloud = 100 }", "");
    // The layout kubelet makes: cutover.toml -> ..data/cutover.toml,
    // ..data -> ..2026_11_27_01, swapped by renaming a new ..data symlink.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..2026_11_27_01")).unwrap();
    std::fs::write(d.join("..2026_11_27_01/cutover.toml"), &first).unwrap();
    std::os::unix::fs::symlink("..2026_11_27_01", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/cutover.toml", d.join("cutover.toml")).unwrap();
    let path = d.join("cutover.toml");
    let proxy = ProxyProc::start_in(dir, path, &[], &[]);
    let d = proxy.dir.path();

    std::fs::create_dir(d.join("..2026_11_27_02")).unwrap();
    std::fs::write(d.join("..2026_11_27_02/cutover.toml"), &second).unwrap();
    std::os::unix::fs::symlink("..2026_11_27_02", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2026_11_27_01")).unwrap();

    wait_applied(&proxy, &second).await;
    assert_reloads(&proxy, 1).await;
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(r.header("x-backend"), Some("cloud"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_state_survives_an_unrelated_reload() {
    let onprem = Backend::spawn("onprem").await;
    let sick = Backend::spawn("sick").await;
    sick.behaviour
        .health_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let ejected = Backend::spawn("ejected").await;
    let drained = Backend::spawn("drained").await;
    let spare = Backend::spawn("spare").await;
    let text = |retries: u32| {
        format!(
            "{}[pools.checked]\nbackends = [{}]\nhealth = {{ path = \"/healthz\", interval = \"100ms\" }}\n\
             [pools.passive]\nbackends = [{}]\noutlier = {{ consecutive_failures = 1, ejection = \"60s\" }}\n\
             [[routes]]\nname = \"api\"\nsplit = {{ checked = 50, passive = 50 }}\n",
            base_config().replace("threads = 1", &format!("threads = 1\nretries = {retries}")),
            addrs(&[&onprem, &sick]),
            addrs(&[&ejected, &drained, &spare])
        )
    };
    let first = text(2);
    let proxy = ProxyProc::start(&first);
    let admin = format!("http://{}", proxy.admin.unwrap());
    let cl = client();
    assert!(proxy
        .stderr
        .wait_for(Duration::from_secs(5), |l| l.contains("backend is healthy"))
        .is_some());

    // Eject one backend (a 503 counts as a failure), drain another.
    ejected
        .behaviour
        .status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async { ejected.hits() > 0 }).await || {
            for _ in 0..20 {
                let _ = get(&cl, &proxy.url("/"), &[]).await;
            }
            ejected.hits() > 0
        }
    );
    for _ in 0..10 {
        let _ = get(&cl, &proxy.url("/"), &[]).await;
    }
    let st = status(&proxy).await;
    assert_eq!(st["pools"][1]["backends"][0]["status"], "ejected", "{st}");
    ejected
        .behaviour
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let r = send(
        &cl,
        "POST",
        &format!("{admin}/pools/passive/backends/{}/drain", drained.addr),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    // An unrelated change.
    let second = text(3);
    write_atomic(&proxy.config_path, &second);
    wait_applied(&proxy, &second).await;

    let before = (sick.hits(), ejected.hits(), drained.hits());
    for _ in 0..40 {
        assert_eq!(get(&cl, &proxy.url("/"), &[]).await.unwrap().status, 200);
    }
    assert_eq!(
        (sick.hits(), ejected.hits(), drained.hits()),
        before,
        "state was reset by the reload"
    );
    let st = status(&proxy).await;
    let passive = &st["pools"][1]["backends"];
    assert_eq!(st["pools"][0]["backends"][1]["status"], "unhealthy");
    assert_eq!(passive[0]["status"], "ejected");
    assert_eq!(passive[1]["status"], "draining");
    assert!(onprem.hits() > 0 && spare.hits() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_force_a_reload() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let text = config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", "");
    let proxy = ProxyProc::start(&text);
    let admin = format!("http://{}", proxy.admin.unwrap());
    proxy.signal(libc::SIGHUP);
    assert!(proxy.stderr.wait_until(Duration::from_secs(5), |l| l
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count()
        == 1));

    let r = send(&client(), "POST", &format!("{admin}/reload"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["result"], "ok");
    assert!(v["summary"].as_str().unwrap().contains("routes"));
    assert_reloads(&proxy, 2).await;

    // A listener change applies the rest and waits for a restart.
    let moved = text
        .replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]")
        .replace(
            "split = { onprem = 100, cloud = 0 }",
            "split = { onprem = 0, cloud = 100 }",
        );
    write_atomic(&proxy.config_path, &moved);
    wait_applied(&proxy, &moved).await;
    let st = status(&proxy).await;
    assert_eq!(
        st["config"]["pending_restart"],
        serde_json::json!(["proxy.listen"])
    );
    let r = get(&client(), &proxy.url("/"), &[]).await.unwrap();
    assert_eq!(
        r.header("x-backend"),
        Some("cloud"),
        "still serving on the old listener, new split"
    );

    write_atomic(&proxy.config_path, "[proxy\n");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = send(&client(), "POST", &format!("{admin}/reload"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["result"], "error");
    assert!(v["error"].as_str().unwrap().contains(":1:"), "{v}");
}

/// The route config with a shift of `steps` holding `hold`, gated at `rate`.
fn shifting(onprem: &Backend, cloud: &Backend, steps: &str, hold: &str, rate: &str) -> String {
    format!(
        "{}[routes.shift]\nto = \"cloud\"\nsteps = [{steps}]\nhold = \"{hold}\"\n[routes.shift.gate]\nmax_error_rate = {rate}\n",
        config(onprem, cloud, "{ onprem = 100, cloud = 0 }", "")
    )
}

async fn admin_call(proxy: &ProxyProc, method: &str, path: &str, body: &str) -> Reply {
    let url = format!("http://{}{path}", proxy.admin.unwrap());
    send(&client(), method, &url, &[], body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_hold_or_gate_keeps_the_pause_and_a_new_plan_says_what_it_drops() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let a = shifting(&onprem, &cloud, "10, 50, 100", "60s", "0.01");
    let proxy = ProxyProc::start(&a);
    // At startup the log says, in words, what is served and what moves.
    let started = proxy.stderr.all().join("\n");
    assert!(started.contains("2 pools, 1 route"), "{started}");
    assert!(
        started.contains("route api: split onprem 100, cloud 0; shift to cloud 10/50/100 % every 1m: moving traffic now, step 1 (10 %)"),
        "{started}"
    );
    assert_eq!(
        admin_call(&proxy, "POST", "/routes/api/shift/advance", "")
            .await
            .status,
        200
    );
    assert_eq!(
        admin_call(&proxy, "POST", "/routes/api/shift/pause", "")
            .await
            .status,
        200
    );
    // Only hold and the gate change: still paused on step 2 (50 %). This
    // used to restart the shift at step 1, un-paused, logging only a hash.
    let b = shifting(&onprem, &cloud, "10, 50, 100", "30s", "0.05");
    write_atomic(&proxy.config_path, &b);
    wait_applied(&proxy, &b).await;
    let shift = status(&proxy).await["routes"][0]["shift"].clone();
    assert_eq!(
        (shift["state"].as_str(), shift["step"].as_u64()),
        (Some("paused"), Some(2)),
        "{shift}"
    );
    assert_eq!(shift["hold"], "30s");
    let kept = proxy
        .stderr
        .wait_for(Duration::from_secs(2), |l| l.contains("reload: route api:"))
        .unwrap();
    assert!(kept.contains("hold 1m -> 30s"), "{kept}");
    assert!(kept.contains("kept: paused on step 2 (50 %)"), "{kept}");
    // New steps begin the shift afresh, and the log says what was dropped.
    let c = shifting(&onprem, &cloud, "20, 100", "30s", "0.05");
    write_atomic(&proxy.config_path, &c);
    wait_applied(&proxy, &c).await;
    let line = proxy
        .stderr
        .wait_for(Duration::from_secs(2), |l| l.contains("begins afresh"))
        .unwrap();
    assert!(line.contains("steps 10/50/100 -> 20/100 %"), "{line}");
    assert!(line.contains("dropped: paused on step 2 (50 %)"), "{line}");
    assert_eq!(status(&proxy).await["routes"][0]["shift"]["step"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_split_can_be_cleared_and_a_reload_that_drops_one_says_so() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let a = config(&onprem, &cloud, "{ onprem = 100, cloud = 0 }", "");
    let proxy = ProxyProc::start(&a);
    let r = admin_call(
        &proxy,
        "PUT",
        "/routes/api/split",
        r#"{"onprem":50,"cloud":50}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(status(&proxy).await["routes"][0]["manual_split"], true);
    // DELETE clears it (there was no way to, on a route without a shift).
    let r = admin_call(&proxy, "DELETE", "/routes/api/split", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"cleared\": true"), "{}", r.body);
    let s = status(&proxy).await;
    assert_eq!(s["routes"][0]["manual_split"], false);
    assert_eq!(s["routes"][0]["split"]["onprem"], 100.0);
    let r = admin_call(&proxy, "DELETE", "/routes/api/split", "").await;
    assert!(r.body.contains("\"cleared\": false"), "{}", r.body);
    // A reload that changes the split drops a manual one, and says so.
    admin_call(
        &proxy,
        "PUT",
        "/routes/api/split",
        r#"{"onprem":50,"cloud":50}"#,
    )
    .await;
    let b = config(&onprem, &cloud, "{ onprem = 90, cloud = 10 }", "");
    write_atomic(&proxy.config_path, &b);
    wait_applied(&proxy, &b).await;
    let line = proxy
        .stderr
        .wait_for(Duration::from_secs(2), |l| l.contains("reload: route api:"))
        .unwrap();
    assert!(
        line.contains("split onprem 100, cloud 0 -> onprem 90, cloud 10"),
        "{line}"
    );
    assert!(line.contains("dropped: a manual split"), "{line}");
}

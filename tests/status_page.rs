//! The live status page at the admin root, rendered by a real headless
//! browser (Debian's chromium) against a running proxy: routes with their
//! split and shift timeline, the gate's verdict, pools and backends, the last
//! events; the action buttons only once a token is given; a protected
//! endpoint asking for its token.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::process::Command;

/// Chromium, headless, with the page's scripts run for a few (virtual)
/// seconds: the DOM as rendered, or a screenshot.
fn chromium(url: &str, extra: &[&str]) -> String {
    let out = Command::new("timeout")
        .args([
            "90",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--hide-scrollbars",
            "--window-size=1200,820",
            "--virtual-time-budget=5000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium (scripts/setup.sh test installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config(onprem: &Backend, cloud: &Backend, admin_extra: &str) -> String {
    format!(
        "{}[pools.onprem]\nbackends = [{}]\n[pools.cloud]\nbackends = [{}]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n\
         [routes.shift]\nto = \"cloud\"\nsteps = [10, 50, 100]\nhold = \"10m\"\n\
         [routes.shift.gate]\nmax_error_rate = 0.05\nmin_requests = 10\n\
         [routes.mirror]\nto = \"cloud\"\npercent = 100\n",
        base_config().replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}")
        ),
        addrs(&[onprem]),
        addrs(&[cloud])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_routes_shift_gate_pools_and_events() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let proxy = ProxyProc::start(&config(&onprem, &cloud, ""));
    let admin = format!("http://{}", proxy.admin.unwrap());
    let r = send(
        &client(),
        "POST",
        &format!("{admin}/routes/api/shift/advance"),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let cl = client();
    for _ in 0..40 {
        get(&cl, &proxy.url("/"), &[]).await.unwrap();
    }
    let page = get(&cl, &format!("{admin}/"), &[]).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // Self-contained: nothing is loaded from anywhere else.
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));

    let url = format!("{admin}/");
    let dom = tokio::task::spawn_blocking(move || chromium(&url, &["--dump-dom"]))
        .await
        .unwrap();
    for want in [
        "data-route=\"api\"",
        "shift to cloud: step 2 of 3, 50 % on cloud",
        "<span class=\"now\">50 %</span>",
        "running",
        &format!("data-backend=\"{}\"", onprem.addr),
        &format!("data-backend=\"{}\"", cloud.addr),
        "healthy",
        "last 10 s:",
        "api: running at step 2 (50 %): advanced by operator",
        // The migration report's chart, inline.
        "id=\"share-api\"",
        // The route's shadow traffic.
        "data-mirror=\"\"",
        "mirror to cloud (100 %)",
    ] {
        assert!(dom.contains(want), "{want:?} not rendered:\n{dom}");
    }
    // The gate's verdict with its figures.
    assert!(
        dom.contains("class=\"badge pass\"") || dom.contains("class=\"badge no_verdict\""),
        "{dom}"
    );
    // No token given: no action buttons.
    assert!(!dom.contains("data-action=\"pause\""), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_appear_with_a_token_and_a_protected_endpoint_asks_for_it() {
    let onprem = Backend::spawn("onprem").await;
    let cloud = Backend::spawn("cloud").await;
    let dir = tempfile::tempdir().unwrap();
    let token = "status-page-token-0123456789";
    let file = dir.path().join("token");
    std::fs::write(&file, token).unwrap();
    let proxy = ProxyProc::start(&config(
        &onprem,
        &cloud,
        &format!("token_file = \"{}\"\n", file.display()),
    ));
    let admin = format!("http://{}/", proxy.admin.unwrap());
    // The page loads without the token, and says it needs one.
    let url = admin.clone();
    let dom = tokio::task::spawn_blocking(move || chromium(&url, &["--dump-dom"]))
        .await
        .unwrap();
    assert!(dom.contains("needs its token"), "{dom}");
    assert!(!dom.contains("data-route=\"api\""), "{dom}");
    // With the token: the data and the buttons.
    let url = format!("{admin}#token={token}");
    let dom = tokio::task::spawn_blocking(move || chromium(&url, &["--dump-dom"]))
        .await
        .unwrap();
    assert!(dom.contains("data-route=\"api\""), "{dom}");
    for action in ["pause", "resume", "advance", "rollback"] {
        assert!(
            dom.contains(&format!("data-action=\"{action}\"")),
            "{action}: {dom}"
        );
    }
    // And it draws: a screenshot of real size.
    let shot = dir.path().join("page.png");
    let arg = format!("--screenshot={}", shot.display());
    let url = format!("{admin}#token={token}");
    tokio::task::spawn_blocking(move || chromium(&url, &[&arg]))
        .await
        .unwrap();
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 20_000, "screenshot of {size} bytes");
}

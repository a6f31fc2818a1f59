//! The migration report against a running proxy: an on-prem pool that
//! answers in ~20 ms without errors and a cloud pool that answers in
//! ~60 ms with half its answers 500, at a 50 % step. `cutover report`
//! (text, JSON, SVG) must show the figures the test injected: α = 0.5, the
//! pools' failure rates, their p50s in the right latency buckets, the
//! formulas with those numbers, the projection at α = 1, the costs; and
//! the history must be sampled and survive a restart next to the state
//! file.

mod common;

use common::backend::Backend;
use common::client::{client, get};
use common::proxy::ProxyProc;
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

fn report(proxy: &ProxyProc, extra: &[&str]) -> (bool, String) {
    let admin = proxy.admin.expect("the proxy logged its admin address");
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["report", "--admin"])
        .arg(format!("http://{admin}"))
        .args(extra)
        .output()
        .expect("cutover report");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn near(v: &Value, want: f64, tol: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() <= tol)
}

#[tokio::test]
async fn the_report_shows_what_the_backends_do() {
    let onprem = Backend::spawn("onprem").await;
    onprem.behaviour.delay_ms.store(20, Relaxed);
    let cloud_ok = Backend::spawn("cloud-ok").await;
    let cloud_bad = Backend::spawn("cloud-bad").await;
    for b in [&cloud_ok, &cloud_bad] {
        b.behaviour.delay_ms.store(60, Relaxed);
    }
    // 500 is an answer, not a transport failure: never retried, never
    // ejected, counted as a failure in the figures.
    cloud_bad.behaviour.status.store(500, Relaxed);
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("state.json");
    let config = format!(
        "{}[state]\npath = {:?}\n\n[report]\ncurrency = \"CNY\"\ncost_before = 500000\nmigration_cost = 200000\nfailure_cost = 0.5\n\n\
         [pools.onprem]\nbackends = [{}]\n[pools.onprem.cost]\nper_hour = 12.0\n\n\
         [pools.cloud]\nbackends = [{}]\n[pools.cloud.cost]\nper_hour = 4.0\nper_million_requests = 0.2\n\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n\
         [routes.shift]\nto = \"cloud\"\nsteps = [50, 100]\nhold = \"1h\"\n",
        common::base_config(),
        state.display().to_string(),
        common::addrs(&[&onprem]),
        common::addrs(&[&cloud_ok, &cloud_bad]),
    );
    let mut proxy = ProxyProc::start(&config);
    let c = client();
    let n = 400;
    let mut fails = 0;
    for _ in 0..n {
        let r = get(&c, &proxy.url("/x"), &[]).await.expect("request");
        fails += usize::from(r.status == 500);
    }
    assert!(
        (80..=120).contains(&fails),
        "{fails} of {n} failed; the split is 50/50 and half the cloud fails"
    );

    let (ok, json) = report(&proxy, &["--json"]);
    assert!(ok, "{json}");
    let doc: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["currency"], "CNY");
    assert_eq!(doc["cost"]["total"], 700000.0);
    let r = &doc["routes"][0];
    assert_eq!(r["name"], "api");
    assert_eq!(
        (r["old_pool"].as_str(), r["new_pool"].as_str()),
        (Some("onprem"), Some("cloud"))
    );
    assert!(near(&r["alpha"], 0.5, 1e-9), "{r}");
    assert_eq!(r["step"], 1);
    let pool = |name: &str| {
        r["pools"]
            .as_array()
            .and_then(|p| p.iter().find(|x| x["pool"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let (on, cl) = (pool("onprem"), pool("cloud"));
    assert!(
        near(&on["requests"], 200.0, 2.0) && near(&cl["requests"], 200.0, 2.0),
        "{on} {cl}"
    );
    assert!(near(&on["failure_rate"], 0.0, 1e-9), "{on}");
    assert!(near(&cl["failure_rate"], 0.5, 0.02), "{cl}");
    // Latencies are reported as the upper bound of their bucket: 20 ms
    // lands in (20, 30], 60 ms in (50, 75].
    assert_eq!(
        (on["p50_ms"].as_f64(), cl["p50_ms"].as_f64()),
        (Some(30.0), Some(75.0)),
        "{on} {cl}"
    );
    let p50 = &r["performance"]["p50_ms"];
    assert!(near(&p50["value"], 0.5 * 30.0 + 0.5 * 75.0, 1e-9), "{p50}");
    let e = &r["loss"]["failure_rate"];
    assert!(
        near(&e["before"], 0.0, 1e-9)
            && near(
                &e["after"],
                cl["failure_rate"].as_f64().unwrap_or(-1.0),
                1e-9
            )
    );
    assert!(near(&e["value"], 0.25, 0.01), "{e}");
    let proj = &r["projection"];
    assert_eq!(proj["p50_ms"].as_f64(), Some(75.0));
    assert!(near(&proj["failure_rate"], 0.5, 0.02));
    // Running cost: 12 + 4 per hour plus 0.2 per million cloud requests
    // now; the cloud pool alone (and all the traffic's requests) at α = 1.
    let cost = &r["running_cost"];
    assert!(
        near(&cost["now"], 16.0, 0.01) && near(&cost["at_full"], 4.0, 0.01),
        "{cost}"
    );

    let (ok, text) = report(&proxy, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("C = C1 + C2 = 500000 + 200000 = 700000"),
        "{text}"
    );
    assert!(
        text.contains("route api: onprem → cloud, step 1 (running), α = β = 0.5"),
        "{text}"
    );
    assert!(
        text.contains("T (p50) = 30 ms × (1 − 0.5) + 75 ms × 0.5 = 52.5 ms"),
        "{text}"
    );

    // The history: a sample every 10 s, on the chart.
    let sampled = common::eventually(Duration::from_secs(25), || async {
        let (_, json) = report(&proxy, &["--json"]);
        serde_json::from_str::<Value>(&json).is_ok_and(|d| {
            d["routes"][0]["history"]
                .as_array()
                .is_some_and(|h| !h.is_empty())
        })
    })
    .await;
    assert!(sampled, "no history sample within 25 s");
    let svg_path = state_dir.path().join("report.svg");
    let (ok, out) = report(&proxy, &["--svg", svg_path.to_str().unwrap_or("")]);
    assert!(ok, "{out}");
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    let xml = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let ids: Vec<&str> = xml
        .descendants()
        .filter_map(|n| n.attribute("id"))
        .collect();
    for id in [
        "share-api",
        "errors-api-onprem",
        "errors-api-cloud",
        "p99-api-cloud",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    // Kept across a restart, next to the state file.
    proxy.signal(libc::SIGTERM);
    assert!(
        proxy.wait_exit(Duration::from_secs(40)).is_some(),
        "drained and exited"
    );
    let saved = std::fs::read_to_string(state_dir.path().join("state.json.history.json"))
        .expect("history file");
    assert!(saved.contains("\"api\""), "{saved}");
    let again = ProxyProc::start(&config);
    let (ok, json) = report(&again, &["--json"]);
    assert!(ok, "{json}");
    let doc: Value = serde_json::from_str(&json).expect("JSON");
    assert!(
        doc["routes"][0]["history"]
            .as_array()
            .is_some_and(|h| !h.is_empty()),
        "history restored"
    );
}

//! The state file across versions: shift progress written by the version
//! before route identities were explicit (the `Debug` text of the split and
//! shift) is still honoured, and a route whose split changed starts afresh.
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

/// The config the state below was written for (by the earlier version).
const CONFIG: &str = r#"
[state]
path = "state.json"
[pools.onprem]
backends = ["127.0.0.1:9"]
[pools.cloud]
backends = ["127.0.0.1:9"]
[[routes]]
name = "api"
split = { onprem = 90, cloud = 10 }
[routes.shift]
to = "cloud"
steps = [10, 50, 100]
hold = "1h"
start_at = "2026-12-01T22:30:00Z"
[routes.shift.gate]
max_error_rate = 0.05
min_requests = 20
"#;

/// A state file as the earlier version wrote it: the shift paused by an
/// operator.
const LEGACY_STATE: &str = r#"{
  "version": 1,
  "routes": {
    "api": {
      "definition": "[(\"onprem\", 90.0), (\"cloud\", 10.0)] Some((\"cloud\", \"onprem\", [10.0, 50.0, 100.0], 3600s, Some(SystemTime { tv_sec: 1796164200, tv_nsec: 0 }), Some(GateConfig { max_error_rate: Some(0.05), max_p99: None, max_p99_ratio: None, min_requests: 20, on_breach: Rollback })))",
      "origin_ms": 1796164200000,
      "shift": { "phase": "paused", "step": 0, "step_started": 1796164200000, "paused_elapsed": 2449769 },
      "manual": null
    }
  }
}"#;

async fn shift_state(config: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("state.json"), LEGACY_STATE).expect("state");
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, format!("{}{config}", base_config())).expect("config");
    let proxy = ProxyProc::start_in(dir, path.clone(), &[], &[]);
    let url = format!("http://{}/status", proxy.admin.expect("admin"));
    let v: Value =
        serde_json::from_str(&get(&client(), &url, &[]).await.expect("status").body).expect("json");
    let route = &v["routes"][0]["shift"];
    let written = std::fs::read_to_string(path.with_file_name("state.json")).unwrap_or_default();
    (route["state"].as_str().unwrap_or("").to_string(), written)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_written_by_the_previous_format_is_honoured() {
    let (state, written) = shift_state(CONFIG).await;
    assert_eq!(state, "paused", "the operator's pause was lost");
    // Written again in the explicit form, which the next start reads.
    assert!(
        written.contains("\"definition\": \"v2 split=onprem:90,cloud:10 shift=to:cloud"),
        "{written}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_split_changed_starts_afresh() {
    let changed = CONFIG.replace("onprem = 90, cloud = 10", "onprem = 80, cloud = 20");
    let (state, _) = shift_state(&changed).await;
    assert_ne!(state, "paused");
}

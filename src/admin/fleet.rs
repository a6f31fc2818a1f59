//! The fleet in `/status` and `/metrics`: the connection to etcd, how stale
//! the view is, each replica's heartbeat, the step it serves, its share of
//! the gate's requests, and which replicas define a route differently.

use super::families::family;
use crate::cluster::fleet::differing;
use crate::control::Control;
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seconds since this replica's last heartbeat reached etcd (-1: never).
fn own_heartbeat_age(cluster: &crate::cluster::Cluster) -> f64 {
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    cluster
        .view()
        .own
        .as_ref()
        .map_or(-1.0, |b| unix_now.saturating_sub(b.at_ms) as f64 / 1000.0)
}

/// `(route, replica, value)` samples with those two labels.
fn by_route_replica(v: &[(String, String, f64)]) -> Vec<(Vec<(&str, &str)>, f64)> {
    v.iter()
        .map(|(r, n, x)| (vec![("route", r.as_str()), ("replica", n.as_str())], *x))
        .collect()
}

/// `/status` → `cluster`: `null` without `[cluster]`.
pub(super) fn status(control: &Control) -> Value {
    let Some(cluster) = &control.cluster else {
        return Value::Null;
    };
    let config = control.config();
    let shifting: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| r.shift.is_some())
        .map(|r| r.name.as_str())
        .collect();
    // Each replica's share of the gate's requests, per route.
    let windows: Vec<(&str, Option<crate::cluster::fleet::FleetWindow>)> = shifting
        .iter()
        .map(|r| (*r, control.fleet_window(r)))
        .collect();
    let hashes: Vec<(&str, Option<String>)> = shifting
        .iter()
        .map(|r| (*r, control.route_control(r).map(|rc| rc.hash)))
        .collect();
    // This replica as it is now, not as it last told the fleet.
    let own = control.beat(cluster.name());
    let own_age = own_heartbeat_age(cluster);
    let v = cluster.view();
    let now = Instant::now();
    let mut beats: Vec<(&crate::cluster::record::Beat, bool, f64)> = vec![(&own, true, own_age)];
    for (b, at) in v.peers.values() {
        beats.push((b, false, now.duration_since(*at).as_secs_f64()));
    }
    let replicas: Vec<Value> = beats
        .iter()
        .map(|(b, me, age)| {
            let routes: Map<String, Value> = b
                .routes
                .iter()
                .map(|(name, r)| {
                    let (requests, total) = windows
                        .iter()
                        .find(|(n, _)| n == name)
                        .and_then(|(_, w)| w.as_ref())
                        .map_or((0, 0), |w| {
                            let mine = w
                                .shares
                                .iter()
                                .find(|(n, _)| *n == b.name)
                                .map_or(0, |(_, c)| *c);
                            (mine, w.to.requests)
                        });
                    let same = hashes
                        .iter()
                        .find(|(n, _)| n == name)
                        .and_then(|(_, h)| h.as_deref())
                        == Some(r.hash.as_str());
                    (
                        name.clone(),
                        json!({
                            "state": r.phase.as_str(),
                            "step": r.step,
                            "share": r.share,
                            "gate_requests": requests,
                            "gate_share": if total > 0 { requests as f64 / total as f64 } else { 0.0 },
                            "same_definition": same,
                        }),
                    )
                })
                .collect();
            json!({
                "name": b.name,
                "self": me,
                "last_heartbeat_age_seconds": age,
                "live": *me || *age < crate::cluster::PEER_STALE.as_secs_f64(),
                "config_hash": b.config_hash,
                "routes": routes,
            })
        })
        .collect();
    let drift: Vec<Value> = hashes
        .iter()
        .filter_map(|(route, hash)| {
            let differ = differing(route, hash.as_deref()?, v.live_peers(now));
            (!differ.is_empty()).then(|| json!({ "route": route, "replicas": differ }))
        })
        .collect();
    json!({
        "name": cluster.name(),
        "prefix": cluster.settings.prefix,
        "etcd": cluster.settings.etcd,
        "connected": v.connected,
        "synced": v.synced,
        "revision": v.revision,
        "view_age_seconds": v.last_contact.map(|t| now.duration_since(t).as_secs_f64()),
        "replicas": replicas,
        "drift": drift,
        "writes": {
            "ok": cluster.writes.ok.load(Relaxed),
            "conflict": cluster.writes.conflict.load(Relaxed),
            "error": cluster.writes.error.load(Relaxed),
        },
    })
}

/// The fleet's metric families (none without `[cluster]`).
pub(super) fn families(control: &Control) -> Vec<MetricFamily> {
    let Some(cluster) = &control.cluster else {
        return Vec::new();
    };
    let status = status(control);
    let get = |k: &str| status.get(k).cloned().unwrap_or(Value::Null);
    let connected = if get("connected").as_bool() == Some(true) {
        1.0
    } else {
        0.0
    };
    let age = get("view_age_seconds").as_f64().unwrap_or(-1.0);
    let replicas = get("replicas");
    let list = replicas.as_array().cloned().unwrap_or_default();
    let live = list
        .iter()
        .filter(|r| r.get("live").and_then(Value::as_bool) == Some(true))
        .count();
    let mut shares = Vec::new();
    let mut steps = Vec::new();
    for r in &list {
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(routes) = r.get("routes").and_then(Value::as_object) {
            for (route, v) in routes {
                let n = v
                    .get("gate_requests")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let s = v.get("step").and_then(Value::as_f64).unwrap_or(0.0);
                shares.push((route.clone(), name.clone(), n));
                steps.push((route.clone(), name.clone(), s));
            }
        }
    }
    let config = control.config();
    let drift: Vec<(String, f64)> = config
        .routes
        .iter()
        .filter(|r| r.shift.is_some())
        .map(|r| {
            let differs = get("drift").as_array().is_some_and(|d| {
                d.iter()
                    .any(|e| e.get("route").and_then(Value::as_str) == Some(&r.name))
            });
            (r.name.clone(), if differs { 1.0 } else { 0.0 })
        })
        .collect();
    let writes = &cluster.writes;
    vec![
        family("cutover_cluster_connected", "1 while connected to etcd with a full view of the fleet.", MetricType::GAUGE, vec![(vec![], connected)]),
        family("cutover_cluster_view_age_seconds", "Seconds since the last exchange with etcd (-1: never).", MetricType::GAUGE, vec![(vec![], age)]),
        family("cutover_cluster_replicas", "Replicas of the fleet alive now, this one included.", MetricType::GAUGE, vec![(vec![], live as f64)]),
        family("cutover_cluster_route_drift", "1 while some replica defines the shifting route differently (the route does not advance).", MetricType::GAUGE,
            drift.iter().map(|(r, x)| (vec![("route", r.as_str())], *x)).collect()),
        family("cutover_cluster_replica_step", "The step each replica serves (1-based, 0 before the start).", MetricType::GAUGE, by_route_replica(&steps)),
        family("cutover_cluster_gate_requests", "Each replica's requests to the target pool in the gate's window.", MetricType::GAUGE, by_route_replica(&shares)),
        family("cutover_cluster_writes_total", "Compare-and-swap writes to etcd by result.", MetricType::COUNTER, vec![
            (vec![("result", "ok")], writes.ok.load(Relaxed) as f64),
            (vec![("result", "conflict")], writes.conflict.load(Relaxed) as f64),
            (vec![("result", "error")], writes.error.load(Relaxed) as f64),
        ]),
    ]
}

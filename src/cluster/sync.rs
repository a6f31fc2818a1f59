//! The task that keeps this replica in its fleet: connects to etcd, reads
//! everything under the prefix, applies it, then watches the prefix from the
//! revision it read; twice a second it publishes its heartbeat under its
//! lease, writes the records the fleet is missing and the stops it made on
//! its own. Any error ends the session: the replica keeps serving with what
//! it last knew (its split frozen), reconnects with a growing pause, and
//! reads everything again (a watch does not reconnect by itself).

use super::record::{Beat, Drains, Key, RouteRecord};
use super::{Cluster, Pending};
use crate::control::Control;
use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, TlsOptions,
    WatchOptions,
};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

/// How often the heartbeat (with the gate window) is published.
pub(crate) const BEAT: Duration = Duration::from_millis(500);
/// The lease's time to live: a replica that stops beating leaves the fleet's
/// view this long after.
const LEASE_TTL_SECS: i64 = 3;
/// How often the lease is renewed.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// Limits on talking to etcd: a dead etcd is noticed within these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between reconnection attempts grows up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Shutdown = tokio::sync::watch::Receiver<bool>;

/// Ends a task when dropped (a session's helpers end with the session).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keep `control`'s fleet view current until shutdown.
pub(crate) async fn run(control: Arc<Control>, mut shutdown: Shutdown) {
    let Some(cluster) = control.cluster.clone() else {
        return;
    };
    let mut pending = cluster.take_pending();
    let lease = AtomicI64::new(0);
    let mut backoff = Duration::from_millis(100);
    let mut outage: Option<Instant> = None;
    loop {
        let ended = tokio::select! {
            r = session(&control, &cluster, &mut pending, &lease, &mut outage) => r,
            _ = shutdown.changed() => break,
        };
        let was_online = cluster.online();
        {
            let mut v = cluster.view();
            v.connected = false;
            v.synced = false;
        }
        cluster.set_client(None);
        if let Err(e) = ended {
            if was_online || outage.is_none() {
                warn!(
                    endpoints = %cluster.settings.etcd.join(","),
                    "cannot reach etcd ({e}); serving with the last known state, no route moves to a higher step until it is back"
                );
            }
        }
        outage.get_or_insert_with(Instant::now);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break,
        }
        backoff = if was_online {
            Duration::from_millis(100)
        } else {
            (backoff * 2).min(MAX_BACKOFF)
        };
    }
    // Leave the fleet at once rather than when the lease runs out.
    let id = lease.load(Relaxed);
    if let (Some(mut client), true) = (cluster.client(), id != 0) {
        let _ = tokio::time::timeout(Duration::from_millis(500), client.lease_revoke(id)).await;
    }
}

fn connect_options(cluster: &Cluster) -> Result<ConnectOptions, String> {
    let s = &cluster.settings;
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1));
    if let Some((user, password)) = &s.auth {
        opts = opts.with_user(user.clone(), password.0.clone());
    }
    if let Some(ca) = &s.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        opts = opts.with_tls(TlsOptions::new().ca_certificate(Certificate::from_pem(pem)));
    }
    Ok(opts)
}

async fn next_pending(rx: &mut Option<UnboundedReceiver<Pending>>) -> Option<Pending> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection to etcd, until something fails.
async fn session(
    control: &Arc<Control>,
    cluster: &Arc<Cluster>,
    pending: &mut Option<UnboundedReceiver<Pending>>,
    lease_id: &AtomicI64,
    outage: &mut Option<Instant>,
) -> Result<(), String> {
    let err = |what: &str, e: etcd_client::Error| format!("{what}: {e}");
    let s = &cluster.settings;
    let mut client = Client::connect(&s.etcd, Some(connect_options(cluster)?))
        .await
        .map_err(|e| err("connect", e))?;
    let lease = client
        .lease_grant(LEASE_TTL_SECS, None)
        .await
        .map_err(|e| err("lease", e))?
        .id();
    lease_id.store(lease, Relaxed);
    let (mut keeper, mut lease_stream) = client
        .lease_keep_alive(lease)
        .await
        .map_err(|e| err("lease keep-alive", e))?;
    let prefix = format!("{}/", s.prefix);
    let all = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| err("read", e))?;
    let revision = all.header().map_or(0, |h| h.revision());
    {
        let mut v = cluster.view();
        v.routes.clear();
        v.peers.clear();
        v.drains = (Drains::default(), 0);
    }
    for kv in all.kvs() {
        take(control, cluster, kv);
    }
    // The client first: an action that sees the fleet online can write.
    cluster.set_client(Some(client.clone()));
    {
        let mut v = cluster.view();
        v.revision = revision;
        v.connected = true;
        v.synced = true;
        v.last_contact = Some(Instant::now());
    }
    let drains = cluster.view().drains.0.clone();
    control.apply_drains(&drains);
    match outage.take() {
        Some(since) => info!(
            revision,
            after = %humantime::format_duration(Duration::from_millis(since.elapsed().as_millis() as u64)),
            "etcd is back: read the fleet's state again"
        ),
        None => info!(
            replica = %s.name,
            prefix = %s.prefix,
            revision,
            replicas = cluster.view().peers.len() + 1,
            "joined the fleet"
        ),
    }
    cluster.mark_synced();
    let mut events = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await
        .map_err(|e| err("watch", e))?;
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The lease is renewed on its own task, so that slow writes in a round
    // never let it run out; its answers come back on `lease_stream`.
    let _renewing = AbortOnDrop(tokio::spawn(async move {
        let mut keep = tokio::time::interval(KEEPALIVE);
        loop {
            keep.tick().await;
            if keeper.keep_alive().await.is_err() {
                break;
            }
        }
    }));
    loop {
        tokio::select! {
            _ = beat.tick() => round(control, cluster, &mut client, lease).await?,
            msg = lease_stream.message() => match msg {
                Ok(Some(r)) if r.ttl() > 0 => cluster.view().last_contact = Some(Instant::now()),
                Ok(Some(_)) => return Err("the lease expired".into()),
                Ok(None) => return Err("the lease stream ended".into()),
                Err(e) => return Err(err("lease keep-alive", e)),
            },
            msg = events.message() => match msg {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        return Err(format!("the watch was cancelled: {}", resp.cancel_reason()));
                    }
                    for ev in resp.events() {
                        match (ev.event_type(), ev.kv()) {
                            (EventType::Put, Some(kv)) => take(control, cluster, kv),
                            (EventType::Delete, Some(kv)) => forget(control, cluster, kv),
                            _ => {}
                        }
                    }
                    let mut v = cluster.view();
                    if let Some(h) = resp.header() {
                        v.revision = v.revision.max(h.revision());
                    }
                    v.last_contact = Some(Instant::now());
                }
                Ok(None) => return Err("the watch ended".into()),
                Err(e) => return Err(err("watch", e)),
            },
            Some(p) = next_pending(pending) => write_pending(control, &p.route).await?,
        }
    }
}

/// The periodic work: heartbeat, missing records, unwritten stops.
async fn round(
    control: &Arc<Control>,
    cluster: &Arc<Cluster>,
    client: &mut Client,
    lease: i64,
) -> Result<(), String> {
    let beat = control.beat(cluster.name());
    let key = Key::Replica(cluster.name().to_string()).path(&cluster.settings.prefix);
    let value = serde_json::to_vec(&beat).unwrap_or_default();
    client
        .put(key, value, Some(PutOptions::new().with_lease(lease)))
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    {
        let mut v = cluster.view();
        v.own = Some(beat);
        v.last_contact = Some(Instant::now());
    }
    for (route, rec, expected) in control.records_to_create() {
        let key = Key::Route(route.clone());
        let value = serde_json::to_vec(&rec).unwrap_or_default();
        match cluster.compare_and_swap(&key, &value, expected).await {
            Ok(rev) => {
                info!(route = %route, reason = %rec.reason, "wrote the fleet's record of the route");
                cluster
                    .view()
                    .routes
                    .insert(route.clone(), (rec.clone(), rev));
                control.apply_record(&route, rec, rev);
            }
            Err(super::WriteError::Conflict(current)) => control.adopt(&key, current),
            Err(e) => return Err(e.to_string()),
        }
    }
    for (route, ..) in control.pending_stops() {
        write_pending(control, &route).await?;
    }
    control.adopt_known_records();
    let drains = cluster.view().drains.0.clone();
    control.apply_drains(&drains);
    Ok(())
}

/// Write a stop this replica made on its own, retrying a lost
/// compare-and-swap on the newer record a few times. An error (etcd gone)
/// ends the session; the stop stays owed.
async fn write_pending(control: &Arc<Control>, route: &str) -> Result<(), String> {
    for _ in 0..5 {
        let Some((_, rec, rev)) = control
            .pending_stops()
            .into_iter()
            .find(|(r, ..)| r == route)
        else {
            return Ok(());
        };
        if control.write_pending(route, rec, rev).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// A value under the prefix was written: keep it in the view, apply it.
fn take(control: &Control, cluster: &Cluster, kv: &KeyValue) {
    let (Ok(key), rev) = (kv.key_str(), kv.mod_revision()) else {
        return;
    };
    let Some(parsed) = Key::parse(&cluster.settings.prefix, key) else {
        return;
    };
    let bad = |what: &str, e: serde_json::Error| {
        warn!(
            key,
            "ignored a {what} in etcd that cutover cannot read: {e}"
        );
    };
    let key = parsed;
    match key {
        Key::Route(route) => match serde_json::from_slice::<RouteRecord>(kv.value()) {
            Ok(rec) => {
                cluster
                    .view()
                    .routes
                    .insert(route.clone(), (rec.clone(), rev));
                control.apply_record(&route, rec, rev);
            }
            Err(e) => bad("route record", e),
        },
        Key::Replica(name) if name != cluster.name() => {
            match serde_json::from_slice::<Beat>(kv.value()) {
                Ok(beat) => {
                    cluster.view().peers.insert(name, (beat, Instant::now()));
                }
                Err(e) => bad("heartbeat", e),
            }
        }
        Key::Replica(_) => {}
        Key::Drains => match serde_json::from_slice::<Drains>(kv.value()) {
            Ok(d) => {
                if cluster.view().put_drains(d.clone(), rev) {
                    control.apply_drains(&d);
                }
            }
            Err(e) => bad("drain list", e),
        },
    }
}

/// A value under the prefix was deleted (a replica's lease ran out, or an
/// operator removed a key by hand).
fn forget(control: &Control, cluster: &Cluster, kv: &KeyValue) {
    let Ok(key) = kv.key_str() else { return };
    match Key::parse(&cluster.settings.prefix, key) {
        Some(Key::Replica(name)) if cluster.view().peers.remove(&name).is_some() => {
            info!(replica = %name, "a replica left the fleet");
        }
        Some(Key::Replica(_)) => {}
        Some(Key::Route(route)) => {
            // The next round writes it again from this replica's state.
            cluster.view().routes.remove(&route);
        }
        Some(Key::Drains) => {
            cluster.view().drains = (Drains::default(), 0);
            control.apply_drains(&Drains::default());
        }
        None => {}
    }
}

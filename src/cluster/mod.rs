//! A fleet of replicas acting as one, on etcd.
//!
//! Without a `[cluster]` section none of this exists and a replica decides
//! alone. With one, every replica keeps the fleet's decisions in etcd under
//! the prefix (see [`record`]): operators' actions and gate breaches are
//! compare-and-swap writes of a route's record, which every replica watches
//! and applies; each replica publishes its gate window under a lease, and
//! every replica judges the gate on the fleet's sum ([`fleet`]). The step a
//! replica serves is a function of the shared record and the clock, so all
//! replicas serve the same one without a leader.
//!
//! This module holds the replica's view of the fleet (what it last read from
//! etcd) and the etcd client; `sync` is the task that keeps the view
//! current. The view's lock is only taken by the control plane, never by a
//! request.

pub mod fleet;
pub mod record;
pub(crate) mod sync;

use crate::config::ClusterSettings;
use record::{Beat, Drains, Key, RouteRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A peer whose heartbeat is older than this no longer counts (its lease
/// normally removes it sooner).
pub(crate) const PEER_STALE: Duration = Duration::from_secs(3);

/// Something this replica decided on its own (a gate breach, or an
/// operator's pause or rollback while etcd was unreachable) that the fleet
/// has not yet seen: written by the sync task as soon as it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    /// The route.
    pub route: String,
}

/// Why a write to etcd did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Someone else wrote first; the current value and its revision.
    #[error("another replica changed it first")]
    Conflict(Option<(Vec<u8>, i64)>),
    /// etcd could not be reached or refused.
    #[error("etcd is unreachable: {0}")]
    Unavailable(String),
}

/// The replica's view of the fleet.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Connected to etcd now.
    pub connected: bool,
    /// The records were read in full since the last connect.
    pub synced: bool,
    /// The last successful exchange with etcd.
    pub last_contact: Option<Instant>,
    /// The last revision seen.
    pub revision: i64,
    /// Each route's record and its modification revision.
    pub routes: HashMap<String, (RouteRecord, i64)>,
    /// The drained backends and their modification revision (0: none yet).
    pub drains: (Drains, i64),
    /// Other replicas' heartbeats, and when each arrived.
    pub peers: BTreeMap<String, (Beat, Instant)>,
    /// This replica's last heartbeat.
    pub own: Option<Beat>,
}

impl View {
    /// Keep `rec` as the record of `route` if it is newer than the one kept;
    /// whether it was.
    pub(crate) fn put_route(&mut self, route: &str, rec: RouteRecord, rev: i64) -> bool {
        match self.routes.get(route) {
            Some((_, kept)) if *kept >= rev => false,
            _ => {
                self.routes.insert(route.to_string(), (rec, rev));
                true
            }
        }
    }

    /// Keep `drains` if newer than the list kept; whether it was.
    pub(crate) fn put_drains(&mut self, drains: Drains, rev: i64) -> bool {
        if self.drains.1 >= rev {
            return false;
        }
        self.drains = (drains, rev);
        true
    }

    /// Heartbeats of the peers that are alive now.
    pub(crate) fn live_peers(&self, now: Instant) -> impl Iterator<Item = &Beat> {
        self.peers
            .values()
            .filter(move |(_, at)| now.duration_since(*at) < PEER_STALE)
            .map(|(b, _)| b)
    }
}

/// Writes to etcd, by outcome, for metrics.
#[derive(Debug, Default)]
pub(crate) struct WriteCounts {
    /// Written.
    pub ok: AtomicU64,
    /// Lost a compare-and-swap.
    pub conflict: AtomicU64,
    /// etcd unreachable or refused.
    pub error: AtomicU64,
}

/// This replica's membership of a fleet.
pub struct Cluster {
    /// The `[cluster]` settings it started with.
    pub settings: ClusterSettings,
    view: Mutex<View>,
    client: Mutex<Option<etcd_client::Client>>,
    pending_tx: mpsc::UnboundedSender<Pending>,
    pending_rx: Mutex<Option<mpsc::UnboundedReceiver<Pending>>>,
    pub(crate) writes: WriteCounts,
    first_sync: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    /// A member of the fleet `settings` names; nothing connects until
    /// `sync::run` starts.
    pub fn new(settings: ClusterSettings) -> Cluster {
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        Cluster {
            settings,
            view: Mutex::default(),
            client: Mutex::new(None),
            pending_tx,
            pending_rx: Mutex::new(Some(pending_rx)),
            writes: WriteCounts::default(),
            first_sync: tokio::sync::watch::Sender::new(false),
        }
    }

    /// This replica's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The replica's view (a short lock: never held across IO).
    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connected to etcd, with a full view.
    pub fn online(&self) -> bool {
        let v = self.view();
        v.connected && v.synced
    }

    /// Ask the sync task to write a decision this replica made alone.
    pub(crate) fn publish_later(&self, route: &str) {
        let _ = self.pending_tx.send(Pending {
            route: route.to_string(),
        });
    }

    pub(crate) fn take_pending(&self) -> Option<mpsc::UnboundedReceiver<Pending>> {
        self.pending_rx.lock().ok().and_then(|mut r| r.take())
    }

    pub(crate) fn set_client(&self, client: Option<etcd_client::Client>) {
        if let Ok(mut c) = self.client.lock() {
            *c = client;
        }
    }

    fn client(&self) -> Option<etcd_client::Client> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    /// Wait (at most `limit`) until the first full read of the fleet's
    /// state; whether it happened.
    pub async fn wait_first_sync(&self, limit: Duration) -> bool {
        let mut rx = self.first_sync.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|v| *v))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub(crate) fn mark_synced(&self) {
        self.first_sync.send_replace(true);
    }

    /// Write `value` at `key` if its modification revision is still
    /// `expected` (0: the key does not exist). The new revision.
    pub async fn compare_and_swap(
        &self,
        key: &Key,
        value: &[u8],
        expected: i64,
    ) -> Result<i64, WriteError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
        let Some(mut client) = self.client() else {
            self.writes.error.fetch_add(1, Relaxed);
            return Err(WriteError::Unavailable("not connected".into()));
        };
        let path = key.path(&self.settings.prefix);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                path.clone(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::put(path.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(path, None)]);
        let resp = match client.txn(txn).await {
            Ok(r) => r,
            Err(e) => {
                self.writes.error.fetch_add(1, Relaxed);
                return Err(WriteError::Unavailable(e.to_string()));
            }
        };
        let revision = resp.header().map_or(0, |h| h.revision());
        self.view().last_contact = Some(Instant::now());
        if resp.succeeded() {
            self.writes.ok.fetch_add(1, Relaxed);
            return Ok(revision);
        }
        self.writes.conflict.fetch_add(1, Relaxed);
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
            _ => None,
        });
        Err(WriteError::Conflict(current))
    }

    /// Why `route` (whose definition here hashes to `hash`, following the
    /// fleet's record up to revision `applied`) must not move to a higher
    /// step now, if it must not: etcd unreachable, replicas that define the
    /// route differently, or a record of the fleet this replica has not
    /// applied (or none for this definition yet).
    pub(crate) fn frozen(&self, route: &str, hash: &str, applied: i64) -> Option<String> {
        let v = self.view();
        if !(v.connected && v.synced) {
            return Some("etcd is unreachable: the split stays where it is".into());
        }
        let differ = fleet::differing(route, hash, v.live_peers(Instant::now()));
        if !differ.is_empty() {
            return Some(format!(
                "replicas {} define the route differently: the split stays where it is until they agree",
                differ.join(", ")
            ));
        }
        match v.routes.get(route) {
            Some((r, rev)) if r.hash == hash && *rev <= applied => None,
            _ => Some("waiting for the fleet's record of this route".into()),
        }
    }

    /// The fleet's gate window of `route`: this replica's own sums plus
    /// the live peers' that match its definition and window.
    /// The fleet's mirror comparisons of `route`: `own` plus the live
    /// peers' with the same definition.
    pub(crate) fn fleet_mirror(
        &self,
        route: &str,
        hash: &str,
        own: crate::shift::window::Sums,
    ) -> crate::shift::window::Sums {
        let v = self.view();
        fleet::sum_mirror(route, hash, own, v.live_peers(Instant::now()))
    }

    pub(crate) fn fleet_window(
        &self,
        route: &str,
        hash: &str,
        since_ms: u64,
        to: crate::shift::window::Sums,
        from: crate::shift::window::Sums,
    ) -> fleet::FleetWindow {
        let v = self.view();
        fleet::sum(
            route,
            hash,
            since_ms,
            (self.name(), to, from),
            v.live_peers(Instant::now()),
        )
    }
}

//! The mirror worker: takes finished exchanges off the queue (polled, see
//! [`run`]), sends each
//! copy to the mirror pool (and now and then to the primary again, to
//! learn noise), compares the answers and counts the result. At most
//! [`CONCURRENCY`] copies are in flight; while they are, the queue fills
//! and further copies are dropped (counted) rather than waiting.

use super::client::{Client, SendError};
use super::http1::{self, Reply};
use super::state::Diff;
use super::Job;
use crate::clock::now_ms;
use crate::control::Control;
use crate::snapshot::{Backend, Snapshot};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::Semaphore;

/// Copies in flight at once, over all routes.
pub const CONCURRENCY: usize = 64;

/// Noise is learned from the first this many copies of a route…
const NOISE_FIRST: u64 = 20;
/// …then from one in this many.
const NOISE_EVERY: u64 = 20;

/// How long the worker waits before looking at the queue again: shortly
/// after copies came, longer and longer while none do.
const POLL_BUSY: Duration = Duration::from_millis(1);
const POLL_IDLE: Duration = Duration::from_millis(50);
/// Copies taken off the queue per look.
const BATCH: usize = 16;
/// Without a mirrored route in the config.
const POLL_OFF: Duration = Duration::from_secs(1);

/// Start the worker on a thread of its own, at a lower CPU priority
/// (nice 10) than the proxy's threads: when the CPU is short, real
/// requests go first and copies wait in the queue (and are dropped when it
/// is full) instead of the other way round.
pub fn spawn(control: Arc<Control>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cutover mirror".into())
        .spawn(move || {
            // On Linux this applies to the calling thread only.
            // SAFETY: setpriority has no memory effects; a failure only
            // leaves the thread at the normal priority.
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(control)),
                Err(e) => tracing::warn!("mirror: no runtime, no copies: {e}"),
            }
        })
}

/// Run until the queue closes (the process ends).
///
/// The worker looks at the queue every millisecond or so rather than
/// waiting on it: a request path that queues a copy then only writes to
/// memory, never wakes this thread (a system call per copy, on the
/// request's own thread), and copies that come together are taken in one
/// go.
pub async fn run(control: Arc<Control>) {
    let Some(mut queue) = control.mirror_queue() else {
        return;
    };
    let client = Arc::new(Client::default());
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut wait = POLL_IDLE;
    loop {
        let mut took = 0;
        // A few at a time: the thread's bursts of work stay short, so a
        // proxy thread sharing its core is not held up for long.
        while took < BATCH {
            match queue.try_recv() {
                Ok(job) => {
                    took += 1;
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let client = client.clone();
                    tokio::spawn(async move {
                        handle(&client, job).await;
                        drop(permit);
                    });
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        wait = if took > 0 {
            POLL_BUSY
        } else if control.snapshot().routes.iter().any(|r| r.mirror.is_some()) {
            (wait * 2).min(POLL_IDLE)
        } else {
            POLL_OFF
        };
        tokio::time::sleep(wait).await;
    }
}

/// A backend of pool `p` that can take a request now: weighted round robin
/// by `rr` over those up (the split's own pick, as real requests get).
fn pick<'s>(snap: &'s Snapshot, p: usize, rr: &AtomicU64, now: u64) -> Option<&'s Backend> {
    let pool = snap.pools.get(p)?;
    let i = crate::split::pick_weighted(rr.fetch_add(1, Relaxed), &pool.weights, |i| {
        pool.backends[i].state.available(now)
    })?;
    pool.backends.get(i)
}

/// Only a safe request may be sent to the primary a second time.
fn safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

async fn handle(client: &Client, job: Job) {
    let snap = &job.snap;
    let Some(m) = snap.routes.get(job.route).and_then(|r| r.mirror.as_ref()) else {
        return;
    };
    let state = &m.state;
    let (Some(copy), Some(primary)) = (http1::request(&job.capture), http1::reply(&job.capture))
    else {
        tracing::debug!("mirror: a captured exchange could not be read back");
        return;
    };
    drop(job.capture);
    let now = now_ms();
    let Some(target) = pick(snap, m.config.to, &state.rr, now) else {
        state.errors.fetch_add(1, Relaxed);
        return;
    };
    let sample = safe(&copy.method) && {
        let n = state.noise_samples.load(Relaxed);
        n < NOISE_FIRST || state.mirrored.load(Relaxed) % NOISE_EVERY == 0
    };
    state.mirrored.fetch_add(1, Relaxed);
    let timeout = m.config.timeout;
    let mirrored = client.send(target, &copy, timeout);
    let again = async {
        if !sample {
            return None;
        }
        let backend = pick(snap, job.primary, &state.rr, now)?;
        client.send(backend, &copy, timeout).await.ok()
    };
    let (mirrored, again) = tokio::join!(mirrored, again);
    if let Some(again) = again {
        state.noise_samples.fetch_add(1, Relaxed);
        if !primary.truncated && !again.truncated {
            let learned = state.learn(&primary.answer(), &again.answer());
            if learned {
                tracing::debug!(route = %snap.routes[job.route].name, "mirror: learned noise");
            }
        }
    }
    let mirrored = match mirrored {
        Ok(r) => {
            state.refused_in_a_row.store(0, Relaxed);
            r
        }
        Err(e) => {
            state.errors.fetch_add(1, Relaxed);
            if matches!(e, SendError::Connect(_)) {
                pause_if_dead(snap, job.route, state);
            }
            tracing::debug!(
                route = %snap.routes[job.route].name,
                backend = %target.addr,
                "mirror: no answer: {e}"
            );
            return;
        }
    };
    let ignore = state.ignore(&m.ignore);
    let diff = compare(&primary, &mirrored, &ignore).map(|mismatch| {
        Diff::new(
            &copy.method,
            &copy.target,
            &mismatch,
            (primary.status, primary.body.len()),
            (mirrored.status, mirrored.body.len()),
        )
    });
    state.count(now_ms(), diff);
}

/// Copies in a row the mirror pool may refuse before it is paused.
const REFUSALS_BEFORE_PAUSE: u64 = 5;
/// How long a mirror pool that refuses connections is left alone.
const PAUSE: Duration = Duration::from_secs(1);

/// Another copy could not connect: after [`REFUSALS_BEFORE_PAUSE`] in a
/// row, stop copying for [`PAUSE`] (then try again).
fn pause_if_dead(snap: &Snapshot, route: usize, state: &super::MirrorState) {
    let refused = state.refused_in_a_row.fetch_add(1, Relaxed) + 1;
    if refused < REFUSALS_BEFORE_PAUSE {
        return;
    }
    state.refused_in_a_row.store(0, Relaxed);
    let until = now_ms() + PAUSE.as_millis() as u64;
    if state.paused_until_ms.swap(until, Relaxed) + PAUSE.as_millis() as u64 <= now_ms() {
        tracing::warn!(
            route = %snap.routes[route].name,
            "mirror: the mirror pool refuses connections; copies paused for {}",
            humantime::format_duration(PAUSE)
        );
    }
}

/// Compare two answers; when either body was too large to keep, their
/// bodies are left out.
fn compare(
    primary: &Reply,
    mirrored: &Reply,
    ignore: &super::compare::Ignore,
) -> Option<super::compare::Mismatch> {
    let (mut a, mut b) = (primary.answer(), mirrored.answer());
    if primary.truncated || mirrored.truncated {
        a.body = &[];
        b.body = &[];
    }
    super::compare::compare(&a, &b, ignore)
}

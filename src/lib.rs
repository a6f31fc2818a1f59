//! cutover: a Layer-7 load balancer that moves live traffic from old backends
//! to new ones step by step, watches the new pool, and rolls back on its own.
//!
//! The layers, each depending only on those above it (README,
//! "Architecture", draws the same map):
//!
//! - **Pure core** — [`split`] (buckets, weighted sequences, sticky hashes),
//!   [`route`] (request matching), `shift` (the shift state machine, the
//!   gate and its window), `chunked` (strict chunked framing).
//! - **Config** — [`config`]: the file, parsed and validated, with
//!   `FILE:LINE:COL` errors.
//! - **State** — `snapshot` (the immutable per-request snapshot and its
//!   builder, backend peers included), `health` (per-backend health and the
//!   checker), `metrics` (request metrics), `lifecycle` (ready, draining,
//!   what is open), [`access_log`].
//! - **Request core** — [`request`]: the context, the decisions, the retry
//!   rule, the proxy's own answers and the header policy, shared by every
//!   request path.
//! - **Adapters** — `conn` (the client connection guard: deadlines, limits,
//!   the head check, request framing), [`fast`] (cutover's own HTTP/1
//!   path), `http2` (cutover's own HTTP/2 path, which sends its requests
//!   through the HTTP/1 path's backend exchange), `proxy` (Pingora's path).
//!   The adapters depend on the request core; no rule lives in one path
//!   only.
//! - **Control plane** — [`control`] (publishes snapshots: reloads, shift
//!   ticks, operator actions), `reload` (the file watcher).
//! - **Edge of the process** — `admin` (the admin API and scrape-time
//!   metrics), `app` (listeners, accept loop, signals, upgrade), `tls`,
//!   `demo`, [`cli`].
//!
//! Public modules are those the binary, the benches and the tests use; the
//! rest is private to the crate.

pub mod access_log;
mod admin;
mod app;
mod chunked;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
mod conn;
pub mod control;
mod demo;
pub mod fast;
mod health;
mod http2;
pub mod import;
mod lifecycle;
mod metrics;
pub mod migration;
pub mod mirror;
mod proxy;
mod reload;
pub mod request;
pub mod route;
mod shift;
mod snapshot;
pub mod split;
mod tls;

//! cutover: a Layer-7 load balancer that moves live traffic from old backends
//! to new ones step by step, watches the new pool, and rolls back on its own.
//!
//! Module map:
//! - [`config`]: the config file, parsed and validated into [`config::Config`].
//! - [`split`], [`route`]: the pure core — split arithmetic and request matching.
//! - [`health`]: backend health state (rise/fall, ejection) and the checker.
//! - [`snapshot`], [`control`]: the immutable per-request snapshot and the
//!   control plane that publishes it.
//! - [`proxy`]: the Pingora request path.
//! - [`fast`]: cutover's own HTTP/1 path for the common request.
//! - [`conn`]: the client connection guard: deadlines, limits, the head
//!   check and request framing for both request paths.
//! - [`chunked`]: strict chunked framing, shared by the guard and the fast path.
//! - [`app`]: wiring it all into a Pingora server; signals and shutdown.
//! - [`tls`]: loading and checking certificates and keys.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod chunked;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod control;
pub mod demo;
pub mod fast;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod route;
pub mod shift;
pub mod snapshot;
pub mod split;
pub mod tls;

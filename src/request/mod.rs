//! The request core: what every request path decides, in one place.
//!
//! cutover serves requests through adapters — its own HTTP/1 path
//! ([`crate::fast`]) and Pingora's proxy (`crate::proxy`) — that only move
//! bytes. What a request *is* and what happens to it lives here, and every
//! adapter calls the same code:
//!
//! * [`Ctx`]: the per-request context (snapshot, route, pool, attempts);
//! * [`decide`]: route, pool and backend choice, the start and the end of
//!   each attempt, ejection, the gate's window, metrics and the access log;
//! * [`retry`]: the one retry rule (and whether a failure counts against a
//!   backend);
//! * [`error`]: the proxy's own answers (404, 408, 502, …);
//! * [`headers`]: the header policy (hop-by-hop sets, `X-Forwarded-*`).
//!
//! Adapters depend on this module and never on each other.

mod ctx;
pub mod decide;
pub mod error;
pub mod headers;
pub mod retry;
pub mod select;
mod sticky;

pub use ctx::Ctx;
pub use error::Synthetic;

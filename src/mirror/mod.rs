//! Shadow traffic (issue 18): copies of a route's requests sent to another
//! pool, and their answers compared with the primary's. This module holds
//! the comparison ([`compare`]), pure and tested on its own; the mirror's
//! queue and its place in the request paths come with the rest of the
//! issue.

pub mod compare;

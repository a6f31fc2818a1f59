//! The last things that happened, for the status page and `/status`: shift
//! transitions and gate breaches, operators' actions, reloads. A short ring
//! behind a mutex, written by the control plane only (never a request).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many events are kept.
const KEPT: usize = 100;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// `breach`, `shift`, `operator`, `reload` or `fleet`.
    pub kind: &'static str,
    /// What happened, in words.
    pub text: String,
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct Events(Mutex<VecDeque<Event>>);

impl Events {
    /// Record an event now.
    pub fn push(&self, kind: &'static str, text: impl Into<String>) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(Event {
            at: SystemTime::now(),
            kind,
            text: text.into(),
        });
    }

    /// The events kept, newest first.
    pub fn recent(&self) -> Vec<Event> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let e = Events::default();
        for i in 0..(KEPT + 5) {
            e.push("shift", format!("event {i}"));
        }
        let r = e.recent();
        assert_eq!(r.len(), KEPT);
        assert_eq!(r[0].text, format!("event {}", KEPT + 4));
        assert_eq!(r[KEPT - 1].text, "event 5");
    }
}

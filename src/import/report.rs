//! The import report: one line per directive read, with what became of it.
//!
//! Printed on stderr as `FILE:LINE:COL: verdict: directive — note`, and as
//! JSON with `--report FILE.json`. The exit code follows from the worst
//! verdict: 0 everything carried over (or did not matter), 3 carried over
//! with differences, 4 something that changes routing was left behind.

use serde::Serialize;
use std::fmt::Write as _;

/// What became of one directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Carried over with the same behaviour.
    Converted,
    /// Not carried over, and it does not change what a client gets from
    /// which backend (process tuning, logging, MIME types).
    Ignored,
    /// Carried over, but behaving differently in a way the note names.
    Different,
    /// Not carried over; behaviour differs (a header not added, a rate
    /// limit gone), but every request still reaches the same pool.
    Unsupported,
    /// Not carried over, and requests would reach a different pool or
    /// answer (regex locations, rewrites, `if`, Lua, access rules).
    Blocking,
}

impl Verdict {
    /// The word shown in the text report.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Converted => "converted",
            Verdict::Ignored => "ignored",
            Verdict::Different => "different",
            Verdict::Unsupported => "not converted",
            Verdict::Blocking => "BLOCKING",
        }
    }
}

/// One directive and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The file it was read from, as named on the command line or in an
    /// `include`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The directive, abbreviated (`proxy_pass http://api`).
    pub directive: String,
    /// What became of it.
    pub verdict: Verdict,
    /// Why, or what differs.
    pub note: String,
}

/// Every directive read, in file order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The items.
    pub items: Vec<Item>,
}

impl Report {
    /// Add an item.
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    /// Put items in file order (files in the order first seen).
    pub fn sort(&mut self) {
        let mut files: Vec<String> = Vec::new();
        for i in &self.items {
            if !files.contains(&i.file) {
                files.push(i.file.clone());
            }
        }
        self.items.sort_by_key(|i| {
            let f = files
                .iter()
                .position(|f| *f == i.file)
                .unwrap_or(usize::MAX);
            (f, i.line, i.col)
        });
    }

    /// How many items have `v`.
    pub fn count(&self, v: Verdict) -> usize {
        self.items.iter().filter(|i| i.verdict == v).count()
    }

    /// 0 complete, 3 complete with differences, 4 blocking items.
    pub fn exit_code(&self) -> i32 {
        if self.count(Verdict::Blocking) > 0 {
            4
        } else if self.count(Verdict::Different) + self.count(Verdict::Unsupported) > 0 {
            3
        } else {
            0
        }
    }

    /// One line per item, then a summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for i in &self.items {
            let _ = write!(
                out,
                "{}:{}:{}: {}: {}",
                i.file,
                i.line,
                i.col,
                i.verdict.word(),
                i.directive
            );
            if !i.note.is_empty() {
                let _ = write!(out, " — {}", i.note);
            }
            out.push('\n');
        }
        let outcome = match self.exit_code() {
            0 => "complete",
            3 => "complete, with differences",
            _ => "NOT complete: blocking items left behind",
        };
        let _ = writeln!(
            out,
            "import: {outcome} ({} converted, {} different, {} not converted, {} blocking, {} ignored)",
            self.count(Verdict::Converted),
            self.count(Verdict::Different),
            self.count(Verdict::Unsupported),
            self.count(Verdict::Blocking),
            self.count(Verdict::Ignored),
        );
        out
    }

    /// The report as JSON: the items, the counts and the exit code.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "complete": self.exit_code() != 4,
            "exit_code": self.exit_code(),
            "counts": {
                "converted": self.count(Verdict::Converted),
                "different": self.count(Verdict::Different),
                "unsupported": self.count(Verdict::Unsupported),
                "blocking": self.count(Verdict::Blocking),
                "ignored": self.count(Verdict::Ignored),
            },
            "items": self.items,
        })
    }
}

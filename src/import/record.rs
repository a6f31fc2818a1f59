//! What both importers share: the target under construction, the report,
//! one verdict per source line (the worse wins when two parts of a
//! conversion speak of the same one), and the `[proxy]` settings cutover
//! has one of for every route.

use super::model::Target;
use super::report::{Item, Report, Verdict};
use std::collections::HashMap;

/// A directive's place and text, as the report shows it.
#[derive(Debug, Clone)]
pub(super) struct Place {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The directive, abbreviated.
    pub text: String,
}

impl Place {
    /// `FILE:LINE`.
    pub(super) fn origin(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The target and the report, filled together.
#[derive(Default)]
pub(super) struct Recorder {
    /// The config being built.
    pub t: Target,
    /// The report.
    pub r: Report,
    seen: HashMap<(String, usize, usize), usize>,
    /// `[proxy]` key → (value, origin) in force.
    globals: HashMap<String, (String, String)>,
}

impl Recorder {
    /// Record a verdict for the directive at `at`; a second verdict for it
    /// keeps the worse of the two and both notes.
    pub(super) fn mark_at(&mut self, at: &Place, verdict: Verdict, note: impl Into<String>) {
        let note = note.into();
        let key = (at.file.clone(), at.line, at.col);
        if let Some(&i) = self.seen.get(&key) {
            let item = &mut self.r.items[i];
            if !note.is_empty() && !item.note.contains(&note) {
                if !item.note.is_empty() {
                    item.note.push_str("; ");
                }
                item.note.push_str(&note);
            }
            item.verdict = item.verdict.max(verdict);
            return;
        }
        self.seen.insert(key, self.r.items.len());
        self.r.push(Item {
            file: at.file.clone(),
            line: at.line,
            col: at.col,
            directive: at.text.clone(),
            verdict,
            note,
        });
    }

    /// Whether the directive at `at` has a verdict already.
    pub(super) fn is_marked(&self, at: &Place) -> bool {
        self.seen.contains_key(&(at.file.clone(), at.line, at.col))
    }

    /// Set a `[proxy]` setting cutover has one of for every route; a later
    /// directive with another value is reported as a difference.
    pub(super) fn global_at(&mut self, key: &str, value: String, at: &Place, note: &str) {
        match self.globals.get(key) {
            Some((v, _)) if *v == value => self.mark_at(at, Verdict::Converted, note),
            Some((v, origin)) => {
                let why =
                    format!("cutover has one {key} for every route: {v} from {origin} is used");
                self.mark_at(at, Verdict::Different, why);
            }
            None => {
                self.globals
                    .insert(key.to_string(), (value.clone(), at.origin()));
                self.t.set_proxy(key, value, at.origin());
                self.mark_at(at, Verdict::Converted, note);
            }
        }
    }
}

/// `Deref`/`DerefMut` from an importer's context to the [`Recorder`] in its
/// `rec` field, so `cx.t` and `cx.mark_at` read as the recorder's own.
macro_rules! derefs_to_recorder {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = $crate::import::record::Recorder;
            fn deref(&self) -> &Self::Target {
                &self.rec
            }
        }
        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.rec
            }
        }
    };
}
pub(super) use derefs_to_recorder;

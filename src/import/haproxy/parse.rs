//! HAProxy's config syntax: sections of lines, each line words split on
//! blanks, with `"…"` (backslash escapes) and `'…'` (literal) quoting, a
//! backslash escaping a blank, and `#` starting a comment outside quotes.

use crate::import::record::Place;
use crate::import::ImportError;
use std::path::Path;

/// One config line, split into words.
#[derive(Debug, Clone)]
pub(super) struct Line {
    /// The words, unquoted.
    pub words: Vec<String>,
    /// Where it is.
    pub at: Place,
}

impl Line {
    /// The `i`th word, or "".
    pub(super) fn word(&self, i: usize) -> &str {
        self.words.get(i).map(String::as_str).unwrap_or("")
    }

    /// The words from the `i`th on (none past the end).
    pub(super) fn rest(&self, i: usize) -> &[String] {
        self.words.get(i..).unwrap_or(&[])
    }
}

/// A section: `frontend NAME`, `backend NAME`, `defaults`, `global`, …
#[derive(Debug, Clone)]
pub(super) struct Section {
    /// The header line (`frontend web`).
    pub head: Line,
    /// The lines in it.
    pub lines: Vec<Line>,
}

impl Section {
    /// `frontend`, `backend`, `listen`, `defaults`, `global`, …
    pub(super) fn kind(&self) -> &str {
        self.head.word(0)
    }

    /// The section's name, if it has one.
    pub(super) fn name(&self) -> &str {
        self.head.word(1)
    }
}

/// The keywords that open a section.
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "traces",
    "crt-store",
];

/// Read a config file into its sections.
pub(super) fn read(path: &Path) -> Result<Vec<Section>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let mut out: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let (words, col) = split(raw).map_err(|message| ImportError::Syntax {
            file: file.clone(),
            line: n + 1,
            col: 1,
            message,
        })?;
        if words.is_empty() {
            continue;
        }
        let mut shown = raw.trim().to_string();
        if shown.len() > 80 {
            let mut cut = 77;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        let line = Line {
            words,
            at: Place {
                file: file.clone(),
                line: n + 1,
                col,
                text: shown,
            },
        };
        if SECTIONS.contains(&line.word(0)) {
            out.push(Section {
                head: line,
                lines: Vec::new(),
            });
        } else {
            match out.last_mut() {
                Some(s) => s.lines.push(line),
                None => {
                    return Err(ImportError::Syntax {
                        file: file.clone(),
                        line: n + 1,
                        col,
                        message: format!("{:?} outside any section", line.word(0)),
                    })
                }
            }
        }
    }
    Ok(out)
}

/// The words of a line and the column of the first.
fn split(raw: &str) -> Result<(Vec<String>, usize), String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut first_col = 1;
    let mut chars = raw.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                if !in_word && words.is_empty() {
                    first_col = i + 1;
                }
                in_word = true;
                if let Some((_, next)) = chars.next() {
                    cur.push(next);
                }
            }
            '"' | '\'' => {
                if !in_word && words.is_empty() {
                    first_col = i + 1;
                }
                in_word = true;
                let quote = c;
                let mut closed = false;
                while let Some((_, ch)) = chars.next() {
                    if ch == quote {
                        closed = true;
                        break;
                    }
                    if ch == '\\' && quote == '"' {
                        if let Some((_, next)) = chars.next() {
                            cur.push(next);
                        }
                        continue;
                    }
                    cur.push(ch);
                }
                if !closed {
                    return Err("unterminated quoted string".into());
                }
            }
            c => {
                if !in_word && words.is_empty() {
                    first_col = i + 1;
                }
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok((words, first_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_comments() {
        let w = |s: &str| split(s).map(|(w, _)| w);
        assert_eq!(
            w("  acl is_api path_beg /api # the API").ok(),
            Some(vec![
                "acl".into(),
                "is_api".into(),
                "path_beg".into(),
                "/api".into()
            ])
        );
        assert_eq!(
            w(r#"http-check send meth GET uri "/health check" hdr Host 'a b'"#)
                .ok()
                .map(|v| v.len()),
            Some(9)
        );
        assert_eq!(
            w(r"option httpchk GET /a\ b").ok().map(|v| v[3].clone()),
            Some("/a b".into())
        );
        assert_eq!(split("   bind :80").map(|(_, c)| c).ok(), Some(4));
        assert!(w("acl x \"open").is_err());
        assert_eq!(w("# only a comment").ok(), Some(vec![]));
    }
}

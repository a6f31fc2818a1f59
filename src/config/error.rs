//! Config errors an operator can act on: `FILE:LINE:COL: field: what is wrong`.
//!
//! TOML parsers and our own checks report byte ranges; [`Position`] turns a
//! byte offset into the 1-based line and column an editor jumps to.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub col: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text's end).
    pub fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        Position { line, col }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read config: {source}")]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but something in it is wrong.
    #[error("{file}:{}:{}: {field}{}{message}", .pos.line, .pos.col, if .field.is_empty() { "" } else { ": " })]
    Invalid {
        /// The file as the operator named it.
        file: String,
        /// Where in the file.
        pos: Position,
        /// The setting at fault, as a dotted path (`routes[0].split`), or empty.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// The field path named by the error, if it points into the file.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Io { .. } => None,
        }
    }

    /// The position the error points at, if any.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::Invalid { pos, .. } => Some(*pos),
            ConfigError::Io { .. } => None,
        }
    }
}

/// Builds [`ConfigError::Invalid`] values for one file's text.
pub(crate) struct Reporter<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Reporter<'_> {
    /// An error at byte `span.start`, naming `field`.
    pub(super) fn at(
        &self,
        span: std::ops::Range<usize>,
        field: impl fmt::Display,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            pos: Position::of(self.text, span.start),
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, col: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, col: 1 });
        assert_eq!(Position::of(text, 8), Position { line: 2, col: 3 });
        assert_eq!(Position::of(text, 999), Position { line: 3, col: 1 });
    }

    #[test]
    fn display_names_file_line_col_and_field() {
        let r = Reporter {
            file: "c.toml",
            text: "x\ny = 2",
        };
        let e = r.at(2..3, "proxy.y", "bad");
        assert_eq!(e.to_string(), "c.toml:2:1: proxy.y: bad");
    }
}

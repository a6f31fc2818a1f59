//! nginx's config syntax: directives, blocks, quoting, comments, and
//! `include` with globs, read into a tree that remembers each directive's
//! file, line and column.
//!
//! The rules follow nginx's own reader: a token ends at whitespace, `;`,
//! `{` or `}`; `"…"` and `'…'` quote (a backslash escapes the next
//! character); `#` at the start of a token comments out the rest of the
//! line; `${name}` is part of the token. Relative `include` paths are taken
//! from the main file's directory, as nginx takes them from its prefix.

use crate::import::ImportError;
use std::path::{Path, PathBuf};

/// One directive, with its block if it has one.
#[derive(Debug, Clone)]
pub(crate) struct Directive {
    /// Its name (`proxy_pass`).
    pub name: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
    /// `{ … }`, if any.
    pub block: Option<Vec<Directive>>,
    /// The file it was read from.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Directive {
    /// `name arg1 arg2`, shortened for the report.
    pub(crate) fn text(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(char::is_whitespace) {
                s.push_str(&format!("{a:?}"));
            } else {
                s.push_str(a);
            }
            if s.len() > 80 {
                let mut cut = 77;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push_str("...");
                break;
            }
        }
        s
    }

    /// The directives in its block (none without a block).
    pub(crate) fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Includes deeper than this are taken for a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Read `path` and everything it includes.
pub(super) fn read(path: &Path) -> Result<Vec<Directive>, ImportError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    read_file(path, &base, 0)
}

fn read_file(path: &Path, base: &Path, depth: usize) -> Result<Vec<Directive>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let tokens = lex(&text, &name)?;
    let mut pos = 0;
    let tree = block(&tokens, &mut pos, &name, 0)?;
    expand_includes(tree, base, depth)
}

fn expand_includes(
    tree: Vec<Directive>,
    base: &Path,
    depth: usize,
) -> Result<Vec<Directive>, ImportError> {
    let mut out = Vec::with_capacity(tree.len());
    for mut d in tree {
        if d.name == "include" && d.block.is_none() && d.args.len() == 1 {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(syntax(&d, "includes nest too deep (a loop?)"));
            }
            let files = include_files(&d, base)?;
            // The include itself stays in the tree (so the report lists
            // it), followed by what it brought in.
            d.args.push(format!("({} files)", files.len()));
            out.push(d);
            for f in files {
                out.extend(read_file(&f, base, depth + 1)?);
            }
            continue;
        }
        if let Some(children) = d.block.take() {
            d.block = Some(expand_includes(children, base, depth)?);
        }
        out.push(d);
    }
    Ok(out)
}

/// The files an `include` names: one file, or a glob's matches sorted by
/// name (as nginx sorts them). A glob that matches nothing is fine; a plain
/// path that does not exist is an error, as in nginx.
fn include_files(d: &Directive, base: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let arg = &d.args[0];
    let full = if Path::new(arg).is_absolute() {
        PathBuf::from(arg)
    } else {
        base.join(arg)
    };
    let pattern = full.display().to_string();
    if !pattern.contains(['*', '?', '[']) {
        if !full.is_file() {
            return Err(syntax(
                d,
                &format!("include: {} does not exist", full.display()),
            ));
        }
        return Ok(vec![full]);
    }
    let paths =
        glob::glob(&pattern).map_err(|e| syntax(d, &format!("include: bad pattern: {e}")))?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn syntax(d: &Directive, message: &str) -> ImportError {
    ImportError::Syntax {
        file: d.file.clone(),
        line: d.line,
        col: d.col,
        message: message.to_string(),
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

fn lex(text: &str, file: &str) -> Result<Vec<Token>, ImportError> {
    let err = |line, col, message: &str| ImportError::Syntax {
        file: file.to_string(),
        line,
        col,
        message: message.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let mut out = Vec::new();
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize| {
        if chars[*i] == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        let (l0, c0) = (line, col);
        match c {
            c if c.is_whitespace() => advance(&mut i, &mut line, &mut col),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    advance(&mut i, &mut line, &mut col);
                }
            }
            ';' | '{' | '}' => {
                let tok = match c {
                    ';' => Tok::Semi,
                    '{' => Tok::Open,
                    _ => Tok::Close,
                };
                out.push(Token {
                    tok,
                    line: l0,
                    col: c0,
                });
                advance(&mut i, &mut line, &mut col);
            }
            '"' | '\'' => {
                let quote = c;
                advance(&mut i, &mut line, &mut col);
                let mut word = String::new();
                loop {
                    if i >= chars.len() {
                        return Err(err(l0, c0, "unterminated quoted string"));
                    }
                    let ch = chars[i];
                    if ch == quote {
                        advance(&mut i, &mut line, &mut col);
                        break;
                    }
                    if ch == '\\' && i + 1 < chars.len() {
                        advance(&mut i, &mut line, &mut col);
                        let next = chars[i];
                        // nginx keeps the backslash except before a quote
                        // or a backslash; \n, \r and \t are control chars.
                        match next {
                            '"' | '\'' | '\\' => word.push(next),
                            'n' => word.push('\n'),
                            'r' => word.push('\r'),
                            't' => word.push('\t'),
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        }
                        advance(&mut i, &mut line, &mut col);
                        continue;
                    }
                    word.push(ch);
                    advance(&mut i, &mut line, &mut col);
                }
                out.push(Token {
                    tok: Tok::Word(word),
                    line: l0,
                    col: c0,
                });
            }
            _ => {
                let mut word = String::new();
                while i < chars.len() {
                    let ch = chars[i];
                    if ch.is_whitespace() || ch == ';' || ch == '}' {
                        break;
                    }
                    if ch == '{' {
                        // `${var}` belongs to the token; any other `{`
                        // opens a block.
                        if word.ends_with('$') {
                            while i < chars.len() && chars[i] != '}' {
                                word.push(chars[i]);
                                advance(&mut i, &mut line, &mut col);
                            }
                            if i >= chars.len() {
                                return Err(err(l0, c0, "unterminated ${…}"));
                            }
                            word.push('}');
                            advance(&mut i, &mut line, &mut col);
                            continue;
                        }
                        break;
                    }
                    if ch == '\\' && i + 1 < chars.len() {
                        word.push(ch);
                        advance(&mut i, &mut line, &mut col);
                    }
                    word.push(chars[i]);
                    advance(&mut i, &mut line, &mut col);
                }
                out.push(Token {
                    tok: Tok::Word(word),
                    line: l0,
                    col: c0,
                });
            }
        }
    }
    Ok(out)
}

/// Blocks nested deeper than this are refused (real configs nest a few
/// levels; a deeper file would only exhaust the stack).
const MAX_DEPTH: usize = 64;

fn block(
    tokens: &[Token],
    pos: &mut usize,
    file: &str,
    depth: usize,
) -> Result<Vec<Directive>, ImportError> {
    let err = |t: &Token, message: &str| ImportError::Syntax {
        file: file.to_string(),
        line: t.line,
        col: t.col,
        message: message.to_string(),
    };
    let nested = depth > 0;
    if depth > MAX_DEPTH {
        if let Some(t) = tokens.get(pos.saturating_sub(1)) {
            return Err(err(t, "blocks nest too deep"));
        }
    }
    let mut out = Vec::new();
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        let name = match &t.tok {
            Tok::Close if nested => {
                *pos += 1;
                return Ok(out);
            }
            Tok::Word(w) => w.clone(),
            Tok::Close => return Err(err(t, "unexpected \"}\"")),
            Tok::Semi => return Err(err(t, "unexpected \";\"")),
            Tok::Open => return Err(err(t, "unexpected \"{\"")),
        };
        *pos += 1;
        let mut args = Vec::new();
        loop {
            let Some(next) = tokens.get(*pos) else {
                return Err(err(
                    t,
                    &format!("\"{name}\" is not terminated by \";\" or a block"),
                ));
            };
            *pos += 1;
            match &next.tok {
                Tok::Word(w) => args.push(w.clone()),
                Tok::Semi => {
                    out.push(Directive {
                        name,
                        args,
                        block: None,
                        file: file.into(),
                        line: t.line,
                        col: t.col,
                    });
                    break;
                }
                Tok::Open => {
                    let children = block(tokens, pos, file, depth + 1)?;
                    out.push(Directive {
                        name,
                        args,
                        block: Some(children),
                        file: file.into(),
                        line: t.line,
                        col: t.col,
                    });
                    break;
                }
                Tok::Close => {
                    return Err(err(next, &format!("\"{name}\" is not terminated by \";\"")))
                }
            }
        }
    }
    if nested {
        return Err(ImportError::Syntax {
            file: file.to_string(),
            line: tokens.last().map_or(1, |t| t.line),
            col: tokens.last().map_or(1, |t| t.col),
            message: "unexpected end of file, expecting \"}\"".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

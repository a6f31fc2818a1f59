//! `cutover import nginx|haproxy FILE`: turn a working nginx or HAProxy
//! config into a cutover config, and say, directive by directive, what
//! came across and what did not.
//!
//! Each importer reads the real files (includes, quoting, comments,
//! defaults sections), fills a [`model::Target`] — pools, routes,
//! listeners and proxy settings in cutover's terms — and records one
//! [`Item`] for every directive it read. The target is written out as TOML
//! and checked with the same validation `cutover check` runs, so the output
//! is always a config cutover accepts. Nothing is guessed silently: a
//! directive that would change which backend answers a request, and that
//! cutover cannot express, is [`Verdict::Blocking`], and the exit code says
//! so.

mod haproxy;
mod model;
mod nginx;
mod record;
mod report;
mod units;

pub use model::Target;
pub use report::{Item, Report, Verdict};

use std::path::{Path, PathBuf};

/// Which product's config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// nginx (`nginx.conf`, with its includes).
    Nginx,
    /// HAProxy (`haproxy.cfg`).
    Haproxy,
}

/// Why an import could not produce a config at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid syntax for its product.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        /// The file, as named.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
}

/// The result of an import: the config text and the report.
#[derive(Debug)]
pub struct Imported {
    /// The cutover config, TOML.
    pub toml: String,
    /// Every directive read, with its verdict.
    pub report: Report,
}

/// Read `path` as a `source` config and convert it.
pub fn import(source: Source, path: &Path) -> Result<Imported, ImportError> {
    let (target, mut report) = match source {
        Source::Nginx => nginx::convert(path)?,
        Source::Haproxy => haproxy::convert(path)?,
    };
    let toml = target.to_toml(source, path);
    // The output must be a config cutover accepts; if the importer built
    // something the validation refuses, say so as a blocking item rather
    // than hand the operator a file `cutover check` rejects.
    if let Err(e) = crate::config::Config::from_str_named(&toml, Path::new("imported.toml")) {
        report.push(Item {
            file: "imported.toml".into(),
            line: 0,
            col: 0,
            directive: "(the generated config)".into(),
            verdict: Verdict::Blocking,
            note: format!("cutover rejects the result: {e}"),
        });
    }
    report.sort();
    Ok(Imported { toml, report })
}

#[cfg(test)]
mod tests;

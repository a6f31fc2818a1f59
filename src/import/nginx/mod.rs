//! nginx → cutover: upstreams become pools, `server` + `location` become
//! routes, `split_clients` and `map` become splits and header matches,
//! timeouts and retries become `[proxy]` settings.
//!
//! The walk marks every directive it understands; whatever is left is
//! classified by name in [`directives`], so each directive read gets
//! exactly one report line.

mod directives;
mod location;
mod names;
mod parse;
mod server;
mod settings;
mod upstream;
mod vars;

use super::model::{Origin, Target};
use super::record::{Place, Recorder};
use super::report::{Report, Verdict};
use super::ImportError;
use parse::Directive;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Read and convert an nginx config.
pub(super) fn convert(path: &Path) -> Result<(Target, Report), ImportError> {
    let tree = parse::read(path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx::new(base);
    for d in &tree {
        match d.name.as_str() {
            "http" => http(&mut cx, d),
            "include" => cx.mark(d, Verdict::Converted, "read"),
            "stream" | "mail" => cx.mark_tree(
                d,
                Verdict::Blocking,
                "TCP/UDP and mail proxying: cutover proxies HTTP only; this traffic would not be served",
            ),
            _ => {}
        }
    }
    cx.sweep(&tree, "main");
    Ok((cx.rec.t, cx.rec.r))
}

/// The `http` block: first what servers refer to (upstreams, splits,
/// maps), then the settings, then the servers.
fn http(cx: &mut Ctx, http: &Directive) {
    cx.mark(http, Verdict::Converted, "");
    for d in http.children() {
        match d.name.as_str() {
            "upstream" => upstream::upstream(cx, d),
            "split_clients" => vars::split_clients(cx, d),
            "map" => vars::map(cx, d),
            _ => {}
        }
    }
    let scope = vec![http];
    for d in http.children() {
        server::setting(cx, d, false);
    }
    let mut servers = server::Servers::new(http);
    for d in http.children() {
        if d.name == "server" {
            server::server(cx, &mut servers, &scope, d);
        }
    }
    servers.finish(cx);
}

/// The conversion's state: the shared recorder, and what the `http` block
/// defines for servers to use.
pub(super) struct Ctx {
    rec: Recorder,
    /// The main file's directory: relative paths are read from there.
    pub base: PathBuf,
    /// upstream name → (pool, backup pool).
    pub upstreams: HashMap<String, (String, Option<String>)>,
    /// `$var` → what `split_clients` or `map` defines.
    pub vars: HashMap<String, vars::Var>,
    /// Pool → whether `proxy_pass` reaches it over https.
    pub schemes: HashMap<String, bool>,
    /// Conflicts found while resolving the current `proxy_pass`.
    pub conflicts: Vec<String>,
}

super::record::derefs_to_recorder!(Ctx);

fn place(d: &Directive) -> Place {
    Place {
        file: d.file.clone(),
        line: d.line,
        col: d.col,
        text: d.text(),
    }
}

impl Ctx {
    fn new(base: PathBuf) -> Ctx {
        Ctx {
            rec: Recorder::default(),
            base,
            upstreams: HashMap::new(),
            vars: HashMap::new(),
            schemes: HashMap::new(),
            conflicts: Vec::new(),
        }
    }

    /// `FILE:LINE` of a directive.
    pub(super) fn origin(d: &Directive) -> Origin {
        format!("{}:{}", d.file, d.line)
    }

    /// Record a verdict for `d` (the worse of two wins).
    pub(super) fn mark(&mut self, d: &Directive, verdict: Verdict, note: impl Into<String>) {
        self.rec.mark_at(&place(d), verdict, note);
    }

    /// Mark `d` and everything inside it.
    pub(super) fn mark_tree(&mut self, d: &Directive, verdict: Verdict, note: &str) {
        self.mark(d, verdict, note);
        // What is inside goes with its block: one verdict says it all.
        for c in d.children() {
            let inner = format!("inside {} at {}", d.name, Ctx::origin(d));
            self.mark_tree(c, Verdict::Ignored, &inner);
        }
    }

    /// Set a `[proxy]` setting cutover has one of for every route.
    pub(super) fn global(&mut self, key: &str, value: String, d: &Directive, note: &str) {
        self.rec.global_at(key, value, &place(d), note);
    }

    /// A path as nginx reads it: relative ones from the main file's
    /// directory.
    pub(super) fn path(&self, p: &str) -> String {
        if Path::new(p).is_absolute() {
            p.to_string()
        } else {
            self.base.join(p).display().to_string()
        }
    }

    /// Give every directive no handler spoke of its verdict by name.
    fn sweep(&mut self, tree: &[Directive], context: &str) {
        for d in tree {
            if !self.rec.is_marked(&place(d)) {
                let (v, note) = directives::classify(&d.name, context);
                self.mark(d, v, note);
            }
            if d.block.is_some() {
                self.sweep(d.children(), &d.name);
            }
        }
    }
}

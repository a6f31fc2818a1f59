//! `server_name` → the hosts a server's routes match: exact names,
//! `*.suffix`, `prefix.*`, and `.example.com` as both the name and its
//! subdomains; regular expressions block.

use super::parse::Directive;
use super::Ctx;
use crate::import::report::Verdict;

/// The hosts a server's routes match: one entry per name, and `None` (any
/// host) when the server is the default for one of its addresses.
pub(super) fn hosts(cx: &mut Ctx, d: &Directive) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let names: Vec<&Directive> = d
        .children()
        .iter()
        .filter(|c| c.name == "server_name")
        .collect();
    for n in &names {
        let mut note = Vec::new();
        let mut verdict = Verdict::Converted;
        for name in &n.args {
            let name = name.to_ascii_lowercase();
            if name.starts_with('~') {
                verdict = Verdict::Blocking;
                note.push(format!("{name}: a regular expression; cutover matches names exactly or by *. / .* wildcards"));
            } else if name.is_empty() || name == "_" {
                // Not a real host: only the default-server role counts.
            } else if let Some(rest) = name.strip_prefix('.') {
                out.push(Some(rest.to_string()));
                out.push(Some(format!("*.{rest}")));
            } else {
                out.push(Some(name));
            }
        }
        cx.mark(n, verdict, note.join("; "));
    }
    out
}

//! Validation of `[cluster]`: the etcd endpoints, this replica's name, the
//! key prefix and the optional credentials.

use super::raw::*;
use super::validate::{valid_name, Validator};
use super::*;
use serde_spanned::Spanned;

/// The prefix used when `[cluster] prefix` is not set.
pub(super) const DEFAULT_PREFIX: &str = "/cutover";

/// This machine's host name, the default replica name.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, and gethostname
    // writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    // A fully qualified name keeps only its first label.
    let short = name.split('.').next().unwrap_or_default().to_string();
    (!short.is_empty()).then_some(short)
}

impl Validator<'_> {
    pub(super) fn cluster(&self, c: &Spanned<RawCluster>) -> Result<ClusterSettings, ConfigError> {
        let raw = c.get_ref();
        if raw.etcd.get_ref().is_empty() {
            return Err(self.r.at(
                raw.etcd.span(),
                "cluster.etcd",
                "needs at least one endpoint, like \"http://127.0.0.1:2379\"",
            ));
        }
        let mut etcd = Vec::new();
        for (i, e) in raw.etcd.get_ref().iter().enumerate() {
            let field = format!("cluster.etcd[{i}]");
            let span = self.span_or(e.span(), raw.etcd.span());
            let url = e.get_ref().trim();
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .ok_or_else(|| {
                    self.r.at(
                        span.clone(),
                        &field,
                        format!("{url:?} must start with http:// or https://"),
                    )
                })?;
            let hostport = rest.trim_end_matches('/');
            let port_ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || hostport.contains('/') {
                return Err(self.r.at(
                    span,
                    &field,
                    format!(
                        "{url:?} must be a URL with a host and port, like \"http://10.0.0.5:2379\""
                    ),
                ));
            }
            etcd.push(url.trim_end_matches('/').to_string());
        }
        let name = match &raw.name {
            Some(n) => {
                if !valid_name(n.get_ref()) {
                    return Err(self.r.at(
                        n.span(),
                        "cluster.name",
                        "must be 1-64 letters, digits, '-', '_' or '.'",
                    ));
                }
                n.get_ref().clone()
            }
            None => host_name().filter(|h| valid_name(h)).ok_or_else(|| {
                self.r.at(
                    c.span(),
                    "cluster.name",
                    "the host name cannot serve as the replica's name; set cluster.name",
                )
            })?,
        };
        let prefix = match &raw.prefix {
            Some(p) => {
                let v = p.get_ref().trim_end_matches('/');
                let ok = v.starts_with('/') && v.len() > 1 && v.split('/').skip(1).all(valid_name);
                if !ok {
                    return Err(self.r.at(
                        p.span(),
                        "cluster.prefix",
                        "must be a key path like \"/cutover/www\" (segments of letters, digits, '-', '_', '.')",
                    ));
                }
                v.to_string()
            }
            None => DEFAULT_PREFIX.to_string(),
        };
        let password = self.secret(
            raw.password_env.as_ref(),
            raw.password_file.as_ref(),
            "cluster.password",
        )?;
        let auth = match (&raw.user, password) {
            (Some(u), Some(p)) => Some((u.get_ref().clone(), p)),
            (None, None) => None,
            (Some(u), None) => {
                return Err(self.r.at(
                    u.span(),
                    "cluster.user",
                    "needs a password: set cluster.password_env or cluster.password_file",
                ))
            }
            (None, Some(_)) => {
                return Err(self
                    .r
                    .at(c.span(), "cluster.user", "a password is set but no user"))
            }
        };
        let ca = match &raw.ca {
            Some(f) => {
                let path = self.file_path(f);
                if let Err(e) = std::fs::read(&path) {
                    return Err(self.r.at(
                        f.span(),
                        "cluster.ca",
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        if ca.is_some() && !etcd.iter().all(|e| e.starts_with("https://")) {
            return Err(self.r.at(
                raw.etcd.span(),
                "cluster.etcd",
                "with cluster.ca set, every endpoint must be https://",
            ));
        }
        Ok(ClusterSettings {
            etcd,
            name,
            prefix,
            auth,
            ca,
        })
    }

    /// A secret from an environment variable or a file (one of them).
    fn secret(
        &self,
        env: Option<&SStr>,
        file: Option<&SStr>,
        field: &str,
    ) -> Result<Option<AdminToken>, ConfigError> {
        let value = match (env, file) {
            (Some(_), Some(f)) => {
                return Err(self.r.at(
                    f.span(),
                    format!("{field}_file"),
                    format!("give either {field}_env or {field}_file, not both"),
                ))
            }
            (Some(var), None) => std::env::var(var.get_ref()).map_err(|_| {
                self.r.at(
                    var.span(),
                    format!("{field}_env"),
                    format!("environment variable {} is not set", var.get_ref()),
                )
            })?,
            (None, Some(f)) => {
                let path = self.file_path(f);
                std::fs::read_to_string(&path).map_err(|e| {
                    self.r.at(
                        f.span(),
                        format!("{field}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?
            }
            (None, None) => return Ok(None),
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            let span = env.or(file).map_or(self.eof(), |s| s.span());
            return Err(self.r.at(span, field, "the password is empty"));
        }
        Ok(Some(AdminToken(value)))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(cluster: &str) -> Result<Config, String> {
        let text = format!(
            "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = {{ a = 100 }}\n{cluster}"
        );
        Config::from_str_named(&text, std::path::Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_cluster_section() {
        let c = parse(
            "[cluster]\netcd = [\"http://127.0.0.1:2379/\", \"http://10.0.0.2:2379\"]\nname = \"edge-a\"\nprefix = \"/cutover/www/\"\n",
        )
        .unwrap();
        let cl = c.cluster.clone().unwrap();
        assert_eq!(cl.etcd, ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(cl.name, "edge-a");
        assert_eq!(cl.prefix, "/cutover/www");
        assert!(cl.auth.is_none() && cl.ca.is_none());
        let summary = crate::config::summary(&c);
        assert!(
            summary.contains("cluster:   replica edge-a of the fleet at /cutover/www"),
            "{summary}"
        );
    }

    #[test]
    fn defaults_name_and_prefix() {
        let c = parse("[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n").unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.prefix, "/cutover");
        assert!(!cl.name.is_empty());
        assert!(parse("").unwrap().cluster.is_none());
    }

    #[test]
    fn bad_values_name_the_field_and_line() {
        let cases = [
            ("[cluster]\netcd = []\n", "cluster.etcd"),
            ("[cluster]\netcd = [\"127.0.0.1:2379\"]\n", "cluster.etcd[0]"),
            ("[cluster]\netcd = [\"http://host\"]\n", "cluster.etcd[0]"),
            (
                "[cluster]\netcd = [\"http://h:1\"]\nname = \"a b\"\n",
                "cluster.name",
            ),
            (
                "[cluster]\netcd = [\"http://h:1\"]\nprefix = \"nope\"\n",
                "cluster.prefix",
            ),
            (
                "[cluster]\netcd = [\"http://h:1\"]\nuser = \"u\"\n",
                "cluster.user",
            ),
            (
                "[cluster]\netcd = [\"http://h:1\"]\nuser = \"u\"\npassword_env = \"CUTOVER_TEST_SURELY_UNSET\"\n",
                "cluster.password_env",
            ),
            (
                "[cluster]\netcd = [\"http://h:1\"]\nca = \"/nonexistent/ca.pem\"\n",
                "cluster.ca",
            ),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with("c.toml:"), "{e}");
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}

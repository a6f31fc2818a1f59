//! Validation of `[admin]`: the listener (a non-loopback one needs a
//! token) and the bearer token, from an environment variable or a file.

use super::error::ConfigError;
use super::raw::*;
use super::validate::Validator;
use super::*;
use std::ops::Range;

impl Validator<'_> {
    pub(super) fn admin(&self, raw: Option<RawAdmin>) -> Result<AdminSettings, ConfigError> {
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 9901));
        let Some(raw) = raw else {
            return Ok(AdminSettings {
                listen: default_listen,
                token: None,
            });
        };
        let listen = match &raw.listen {
            Some(a) => self.socket_addr(a, "admin.listen")?,
            None => default_listen,
        };
        let token = match (&raw.token_env, &raw.token_file) {
            (Some(_), Some(f)) => {
                return Err(self.r.at(
                    f.span(),
                    "admin.token_file",
                    "give either token_env or token_file, not both",
                ))
            }
            (Some(var), None) => {
                let value = std::env::var(var.get_ref()).map_err(|_| {
                    self.r.at(
                        var.span(),
                        "admin.token_env",
                        format!("environment variable {} is not set", var.get_ref()),
                    )
                })?;
                Some(self.token(value, var.span(), "admin.token_env")?)
            }
            (None, Some(f)) => {
                let path = self.file_path(f);
                let value = std::fs::read_to_string(&path).map_err(|e| {
                    self.r.at(
                        f.span(),
                        "admin.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(self.token(value, f.span(), "admin.token_file")?)
            }
            (None, None) => None,
        };
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(self.r.at(
                raw.listen.as_ref().map_or(self.eof(), |l| l.span()),
                "admin.listen",
                format!(
                    "{listen} is not a loopback address, so the admin endpoint needs a token \
                     (set admin.token_env or admin.token_file)"
                ),
            ));
        }
        Ok(AdminSettings { listen, token })
    }

    fn token(
        &self,
        value: String,
        span: Range<usize>,
        field: &str,
    ) -> Result<AdminToken, ConfigError> {
        let value = value.trim().to_string();
        if value.len() < 16 {
            return Err(self.r.at(
                span,
                field,
                "the admin token is empty or shorter than 16 characters",
            ));
        }
        Ok(AdminToken(value))
    }
}

//! Backend addresses to sockets: names resolved when a config is loaded
//! (like open-source nginx), so a name that does not resolve fails the load
//! or the reload, not a request.

use super::BuildError;
use crate::config::Config;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolve every backend address of `config` (blocking DNS for names).
pub fn resolve_all(config: &Config) -> Result<HashMap<String, SocketAddr>, BuildError> {
    resolve(config, true)
}

/// As [`resolve_all`]; without `dns`, a host name stands for the
/// unspecified address with its port (for `cutover check --skip-dns`).
pub(super) fn resolve(
    config: &Config,
    dns: bool,
) -> Result<HashMap<String, SocketAddr>, BuildError> {
    let mut out = HashMap::new();
    for pool in &config.pools {
        for b in &pool.backends {
            if out.contains_key(&b.addr) {
                continue;
            }
            let addr = match b.addr.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) if !dns => b
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .map(|port| SocketAddr::from(([0, 0, 0, 0], port)))
                    .ok_or_else(|| BuildError::Resolve {
                        pool: pool.name.clone(),
                        addr: b.addr.clone(),
                        reason: "no port".into(),
                    })?,
                Err(_) => b
                    .addr
                    .to_socket_addrs()
                    .map_err(|e| e.to_string())
                    .and_then(|mut it| it.next().ok_or_else(|| "no address".to_string()))
                    .map_err(|reason| BuildError::Resolve {
                        pool: pool.name.clone(),
                        addr: b.addr.clone(),
                        reason,
                    })?,
            };
            out.insert(b.addr.clone(), addr);
        }
    }
    Ok(out)
}

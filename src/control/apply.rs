//! A reload applied to the control plane: the new config resolved, built and
//! swapped in whole (or nothing changes), routes keeping their shift's place
//! and the operator's decisions where their identity allows, certificates
//! reloaded in place, what changed logged in words.

use super::{
    changes, resolve_all, route_definition, routes, unix_seconds, Control, ControlState,
    ReloadOutcome, RouteControl,
};
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::snapshot::BuildError;
use std::sync::Arc;
use std::time::SystemTime;

impl Control {
    /// Replace the config (a reload): resolves names, builds, swaps. On error
    /// nothing changes.
    pub fn apply_config(&self, config: Config) -> Result<(), BuildError> {
        let config = Arc::new(config);
        let resolved = resolve_all(&config)?;
        let mut st = self.lock();
        let access_log = match &st.access_log {
            Some(log) if log.target == config.access_log => Some(log.clone()),
            None if config.access_log == crate::config::AccessLogTarget::Off => None,
            _ => AccessLog::open(&config.access_log, self.metrics.access_log_dropped.clone())
                .map_err(|e| BuildError::Other(e.to_string()))?,
        };
        let now = SystemTime::now();
        let mut next = ControlState {
            state_path: config.state_path.clone(),
            config: config.clone(),
            resolved,
            routes: st.routes.clone(),
            access_log,
            generation: st.generation,
            loaded_at: SystemTime::now(),
            last_reload: st.last_reload.clone(),
        };
        // A route keeps its shift's place and the operator's decisions while
        // its identity (split, shift pools, steps, start) stays; a new hold
        // or new gate thresholds keep them too (see `routes::identity`).
        let mut notes = changes::pool_changes(&st.config, &config);
        next.routes = config
            .routes
            .iter()
            .map(|r| {
                let definition = route_definition(&config, r);
                let old_route = st.config.routes.iter().find(|o| o.name == r.name);
                let rc = match (st.routes.get(&r.name), old_route) {
                    (Some(rc), _) if rc.definition == definition => rc.clone(),
                    (Some(rc), Some(old))
                        if routes::identity(&rc.definition) == routes::identity(&definition) =>
                    {
                        let mut rc = rc.clone();
                        rc.redefine(definition);
                        let what = changes::route_changes(&st.config, old, &config, r);
                        notes.push(format!(
                            "route {}: {}; kept: {}",
                            r.name,
                            what.join(", "),
                            changes::decisions(r, &rc)
                        ));
                        rc
                    }
                    (Some(rc), Some(old)) => {
                        let fresh = RouteControl::fresh(&config, r, now);
                        let what = changes::route_changes(&st.config, old, &config, r);
                        let mut line = format!("route {}: {}", r.name, what.join(", "));
                        if r.shift.is_some() {
                            line.push_str(&format!(
                                "; the shift begins afresh ({})",
                                changes::decisions(r, &fresh)
                            ));
                        }
                        if changes::has_operator_state(rc) {
                            line.push_str(&format!("; dropped: {}", changes::decisions(old, rc)));
                        }
                        notes.push(line);
                        fresh
                    }
                    _ => {
                        notes.push(format!("route {} added", r.name));
                        RouteControl::fresh(&config, r, now)
                    }
                };
                (r.name.clone(), rc)
            })
            .collect();
        self.publish(&mut next)?;
        // New certificates for the listeners that keep running (a changed
        // listener address waits for a restart).
        for listener in &config.proxy.tls {
            if let Some(edge) = self.edge_tls.iter().find(|e| e.listen == listener.listen) {
                if let Err(e) = edge.reload(listener) {
                    tracing::error!(listener = %listener.listen, "certificates not reloaded, the old ones stay: {e}");
                }
            }
        }
        self.registry.prune(&config);
        *st = next;
        self.persist(&st);
        drop(st);
        // A route whose identity now matches a record of the fleet follows
        // it.
        self.adopt_known_records();
        for line in &notes {
            tracing::info!("reload: {line}");
            self.events.push("reload", line.clone());
        }
        if notes.is_empty() {
            tracing::info!("reload: no route, pool or shift changed");
        }
        Ok(())
    }

    /// Record the outcome of a reload attempt (metrics and `/status`).
    pub fn record_reload(&self, error: Option<String>) {
        let now = SystemTime::now();
        let result = if error.is_some() { "error" } else { "ok" };
        self.metrics.reloads.with_label_values(&[result]).inc();
        if error.is_none() {
            self.metrics.last_reload_success.set(unix_seconds(now));
        }
        match &error {
            Some(e) => self.events.push(
                "reload",
                format!("reload refused, the old config keeps serving: {e}"),
            ),
            None => self.events.push(
                "reload",
                format!("config reloaded (hash {})", self.config().hash),
            ),
        }
        self.lock().last_reload = Some(ReloadOutcome { at: now, error });
    }

    /// What this process serves, in words, for the log at startup.
    pub fn describe_start(&self) -> Vec<String> {
        let st = self.lock();
        changes::startup(&st.config, &st.routes)
    }
}

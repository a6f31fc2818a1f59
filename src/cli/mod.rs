//! The command line: `run`, `check`, `demo`, `status`, `import`, `report`,
//! `mirror diffs`.
//!
//! Exit codes: 0 ok; 1 invalid config or failed check; 2 usage error (from
//! clap). Errors are printed as one line an operator can act on, never as a
//! panic or a debug dump.

mod mirror;
mod status;

use crate::app::signals::{exit_when_drained, UnixSignals};
use crate::app::{App, AppOptions};
use crate::config::{self, Config};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// cutover: move live traffic from old backends to new ones, step by step.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a running proxy's admin endpoint is (`status`, `report`).
#[derive(Debug, clap::Args)]
pub struct AdminTarget {
    /// The admin endpoint: a URL or IP:port (default: from `-c`, else
    /// http://127.0.0.1:9901).
    #[arg(long)]
    pub admin: Option<String>,
    /// Read the admin address and token from this config file.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Bearer token for the admin endpoint.
    #[arg(long, env = "CUTOVER_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl AdminTarget {
    /// The admin URL and token to use.
    fn resolve(self) -> Result<(String, Option<String>), String> {
        status::target(self.admin.as_deref(), self.config.as_deref(), self.token)
            .map_err(|e| e.to_string())
    }
}

/// `cutover mirror …`
#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// A route's mirror figures and its last mismatches (request, both
    /// statuses, the first differing header or JSON path, body sizes).
    Diffs {
        /// The route.
        route: String,
        /// Which proxy to ask.
        #[command(flatten)]
        target: AdminTarget,
        /// Print them as JSON (as `GET /routes/{route}/mirror` answers).
        #[arg(long)]
        json: bool,
        /// How many of the last mismatches to list (the proxy keeps 50).
        #[arg(long, default_value_t = 10)]
        last: usize,
    },
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run {
        /// Config file.
        #[arg(short, long, env = "CUTOVER_CONFIG", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Take the listeners over from a running cutover (graceful upgrade;
        /// then send SIGQUIT to the old process).
        #[arg(long)]
        upgrade: bool,
        /// Unix socket for the upgrade handover (default: derived from the
        /// config path, so old and new process agree).
        #[arg(long)]
        upgrade_sock: Option<PathBuf>,
    },
    /// Validate a config file, like `nginx -t`: everything `run` checks
    /// when it loads a config (host names resolved, certificates, the state
    /// and access log files), short of binding the listeners.
    Check {
        /// Config file.
        #[arg(short, long, env = "CUTOVER_CONFIG", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Do not resolve backend host names (checking a config on a machine
        /// other than where it runs).
        #[arg(long)]
        skip_dns: bool,
    },
    /// Watch a cutover happen, with built-in backends and load. No setup.
    Demo {
        /// How long the demo runs.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Print plain lines even on a terminal.
        #[arg(long)]
        plain: bool,
        /// Three replicas and a real etcd on loopback: one replica's breach
        /// rolls back all three (needs etcd installed).
        #[arg(long)]
        fleet: bool,
    },
    /// Turn an nginx or HAProxy config into a cutover config, with a report
    /// of every directive (exit 0 complete, 3 with differences, 4 blocking
    /// items left behind).
    Import {
        /// Whose config: nginx or haproxy.
        source: crate::import::Source,
        /// The main config file (nginx.conf, haproxy.cfg).
        file: PathBuf,
        /// Write the cutover config here (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// The migration report of a running proxy: per route, the cost,
    /// performance and loss formulas filled from live figures, the
    /// projection with all traffic on the new pool, and the shift's history.
    Report {
        /// Which proxy to ask.
        #[command(flatten)]
        target: AdminTarget,
        /// Print the report as JSON (as `GET /report` answers).
        #[arg(long)]
        json: bool,
        /// Also draw the chart (share, error rates, p99 over time) to this SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Shadow traffic of a running proxy.
    Mirror {
        /// What to show.
        #[command(subcommand)]
        what: MirrorCommand,
    },
    /// Show a running proxy's routes, splits, shifts, pools and backends.
    Status {
        /// Which proxy to ask.
        #[command(flatten)]
        target: AdminTarget,
    },
}

fn init_logging() {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cutover=info"));
    // Waiting for the old process's sockets is the normal state of
    // `run --upgrade`, which Pingora logs as an error every second; cutover
    // says it once, calmly (see `run`), and reports a failed handover itself.
    if let Ok(quiet) = "pingora_core::server::transfer_fd=off".parse() {
        filter = filter.add_directive(quiet);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Run `cli`; returns the exit code.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Check { config, skip_dns } => check(&config, skip_dns),
        Command::Run {
            config,
            upgrade,
            upgrade_sock,
        } => {
            init_logging();
            run(
                &config,
                AppOptions {
                    config_file: true,
                    upgrade,
                    upgrade_sock,
                },
            )
        }
        Command::Demo {
            duration,
            plain,
            fleet,
        } => crate::demo::run(duration, plain, fleet),
        Command::Import {
            source,
            file,
            output,
            report,
        } => import(source, &file, output.as_deref(), report.as_deref()),
        Command::Report { target, json, svg } => match target.resolve() {
            Ok((admin, token)) => report(&admin, token.as_deref(), json, svg.as_deref()),
            Err(e) => {
                eprintln!("cutover report: {e}");
                1
            }
        },
        Command::Mirror {
            what:
                MirrorCommand::Diffs {
                    route,
                    target,
                    json,
                    last,
                },
        } => match target.resolve() {
            Ok((admin, token)) => mirror::diffs(&admin, token.as_deref(), &route, json, last),
            Err(e) => {
                eprintln!("cutover mirror diffs: {e}");
                1
            }
        },
        Command::Status { target } => match target.resolve() {
            Ok((admin, token)) => status_command(&admin, token.as_deref()),
            Err(e) => {
                eprintln!("cutover status: {e}");
                1
            }
        },
    }
}

fn report(admin: &str, token: Option<&str>, json: bool, svg: Option<&std::path::Path>) -> i32 {
    let value = match status::fetch_blocking(admin, "/report", token) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cutover report: {e}");
            return 1;
        }
    };
    let doc: crate::migration::ReportDoc = match serde_json::from_value(value.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cutover report: {admin}/report is not a report this version reads: {e}");
            return 1;
        }
    };
    if let Some(path) = svg {
        if let Err(e) = std::fs::write(path, crate::migration::svg::render(&doc)) {
            eprintln!("cutover report: {}: {e}", path.display());
            return 1;
        }
    }
    status::print(&value, json, || crate::migration::text::render(&doc));
    0
}

fn status_command(admin: &str, token: Option<&str>) -> i32 {
    match status::fetch_blocking(admin, "/status", token) {
        Ok(v) => {
            print!("{}", status::render(&v));
            0
        }
        Err(e) => {
            eprintln!("cutover status: {e}");
            1
        }
    }
}

fn import(
    source: crate::import::Source,
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    report: Option<&std::path::Path>,
) -> i32 {
    let imported = match crate::import::import(source, file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cutover import: {e}");
            return 1;
        }
    };
    eprint!("{}", imported.report.render_text());
    if let Some(path) = report {
        let json = serde_json::to_string_pretty(&imported.report.to_json()).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("cutover import: {}: {e}", path.display());
            return 1;
        }
    }
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &imported.toml) {
                eprintln!("cutover import: {}: {e}", path.display());
                return 1;
            }
        }
        None => print!("{}", imported.toml),
    }
    imported.report.exit_code()
}

fn check(path: &std::path::Path, skip_dns: bool) -> i32 {
    let cfg = match Config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    // Everything `run` does with a config before it binds: a config that
    // passes here fails `run` only for a port someone else holds.
    if let Err(e) = crate::control::Control::new_with(cfg.clone(), !skip_dns) {
        eprintln!("{}: {e}", path.display());
        return 1;
    }
    print!("{}", config::summary(&cfg));
    0
}

fn run(path: &std::path::Path, opts: AppOptions) -> i32 {
    // Until the handlers are installed, a SIGHUP must not kill the process
    // (its default action); the reload it asks for is the file as loaded.
    // SAFETY: setting a signal's disposition to "ignore" has no memory effects.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let cfg = match Config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let grace = cfg.proxy.grace;
    if opts.upgrade {
        tracing::info!(
            "waiting for the running cutover to hand over its listening sockets: send it SIGQUIT (kill -QUIT <pid>)"
        );
    }
    let app = match App::build(cfg, opts) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return 1;
        }
    };
    let control = app.control();
    for line in control.describe_start() {
        tracing::info!("{line}");
    }
    let flush = control.clone();
    exit_when_drained(
        control.clone(),
        app.phases(),
        grace,
        Arc::new(move || flush.flush_logs()),
    );
    let reload = app.reload_trigger();
    app.run(Box::new(UnixSignals::new(control.clone(), Some(reload))));
    control.flush_logs();
    0
}

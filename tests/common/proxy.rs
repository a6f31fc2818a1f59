//! Runs the real `cutover` binary on a config written to a temp dir, and
//! finds its ports from the `listening` log lines (all listeners use port 0).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines a child printed, with a condition variable to wait on.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    cv: Condvar,
}

impl Lines {
    /// Add a line (for output read elsewhere).
    pub fn push_line(&self, line: String) {
        self.push(line);
    }

    fn push(&self, line: String) {
        self.lines.lock().expect("lock").push(line);
        self.cv.notify_all();
    }

    /// Wait (bounded) for a line satisfying `f`; returns it.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let mut found = None;
        self.wait_until(timeout, |lines| {
            found = lines.iter().find(|l| f(l)).cloned();
            found.is_some()
        });
        found
    }

    /// Wait (bounded) until `f` holds for all lines so far; whether it did.
    pub fn wait_until(&self, timeout: Duration, mut f: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().expect("lock");
        loop {
            if f(&lines) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            lines = self.cv.wait_timeout(lines, left).expect("wait").0;
        }
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// How many lines contain `pat`.
    pub fn count(&self, pat: &str) -> usize {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.contains(pat))
            .count()
    }
}

/// A running `cutover run` process.
pub struct ProxyProc {
    /// The child process.
    pub child: Child,
    /// Its first plain HTTP listener.
    pub addr: SocketAddr,
    /// Its admin listener, if it logged one.
    pub admin: Option<SocketAddr>,
    /// The config file.
    pub config_path: PathBuf,
    /// The temp dir holding the config (removed on drop).
    pub dir: tempfile::TempDir,
    /// Standard error lines.
    pub stderr: Arc<Lines>,
    /// Standard output lines (access log).
    pub stdout: Arc<Lines>,
}

fn pump(reader: impl std::io::Read + Send + 'static, lines: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            lines.push(line);
        }
    });
}

/// The `addr=` value of a `listening` log line of `kind`.
fn listening_addr(lines: &Lines, kind: &str, timeout: Duration) -> Option<SocketAddr> {
    let pat = format!("kind=\"{kind}\"");
    let line = lines.wait_for(timeout, |l| l.contains("listening") && l.contains(&pat))?;
    let after = line.split("addr=").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

impl ProxyProc {
    /// The first TLS listener's address, once it is logged.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        listening_addr(&self.stderr, "tls", Duration::from_secs(5))
    }

    /// Write `config` and start `cutover run` on it.
    pub fn start(config: &str) -> ProxyProc {
        Self::start_with(config, &[], &[])
    }

    /// As [`ProxyProc::start`], with extra arguments and environment.
    pub fn start_with(config: &str, args: &[&str], env: &[(&str, &str)]) -> ProxyProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("cutover.toml");
        // Tests run in parallel: never the fixed default admin port.
        let config = if config.contains("[admin]") {
            config.to_string()
        } else {
            format!("[admin]\nlisten = \"127.0.0.1:0\"\n\n{config}")
        };
        // `CUTOVER_TEST_FAST_PATH=false` runs a suite through Pingora's
        // request path only (scripts/test.sh runs the behaviour suites
        // both ways), unless the test sets `fast_path` itself.
        let config = if config.contains("fast_path") {
            config
        } else {
            config.replacen(
                "[proxy]\n",
                &format!("[proxy]\n{}", super::fast_path_line()),
                1,
            )
        };
        std::fs::write(&config_path, config).expect("write config");
        Self::start_in(dir, config_path, args, env)
    }

    /// Start on an existing config file in `dir`.
    pub fn start_in(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ProxyProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("run").arg("-c").arg(&config_path).args(args);
        cmd.env("RUST_LOG", "info,pingora=warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cutover");
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        pump(child.stderr.take().expect("stderr"), stderr.clone());
        pump(child.stdout.take().expect("stdout"), stdout.clone());
        let Some(addr) = listening_addr(&stderr, "proxy", Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("cutover did not start:\n{}", stderr.all().join("\n"));
        };
        let admin = listening_addr(&stderr, "admin", Duration::from_millis(200));
        // Signal handlers are in place once it says it is serving.
        if stderr
            .wait_for(Duration::from_secs(30), |l| l.contains("serving (SIGHUP"))
            .is_none()
        {
            let _ = child.kill();
            panic!("cutover did not get ready:\n{}", stderr.all().join("\n"));
        }
        ProxyProc {
            child,
            addr,
            admin,
            config_path,
            dir,
            stderr,
            stdout,
        }
    }

    /// Send a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A URL on the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The admin endpoint's `/metrics` text (no token).
    pub async fn metrics(&self) -> String {
        let admin = self.admin.expect("an admin listener");
        super::get(&super::client(), &format!("http://{admin}/metrics"), &[])
            .await
            .expect("GET /metrics")
            .body
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real etcd server (Debian's `etcd-server`) on loopback, on free ports,
//! with its data in a temporary directory; it can be killed and started
//! again on the same ports and data, as an outage would.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) etcd.
pub struct Etcd {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    /// Serving TLS: (certificate, key, the CA's PEM).
    tls: Option<(std::path::PathBuf, std::path::PathBuf, String)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    tls: Option<&(std::path::PathBuf, std::path::PathBuf, String)>,
) -> Child {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client = format!("{scheme}://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new("etcd");
    if let Some((cert, key, _)) = tls {
        cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
    }
    cmd.args(["--name", "test", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("test={peer}")])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (scripts/setup.sh test installs etcd-server)")
}

impl Etcd {
    /// Start etcd and wait until it answers.
    pub fn start() -> Etcd {
        Self::start_with(None)
    }

    /// Start etcd serving TLS with `cert` and `key` (signed by `ca_pem`).
    pub fn start_tls(cert: &Path, key: &Path, ca_pem: &str) -> Etcd {
        Self::start_with(Some((
            cert.to_path_buf(),
            key.to_path_buf(),
            ca_pem.to_string(),
        )))
    }

    fn start_with(tls: Option<(std::path::PathBuf, std::path::PathBuf, String)>) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client_port, peer_port) = (free_port(), free_port());
        let mut etcd = Etcd {
            child: None,
            client_port,
            peer_port,
            dir,
            tls,
        };
        etcd.restart();
        etcd
    }

    /// The client URL for `[cluster] etcd`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Kill it (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same ports and data; wait until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(
            self.dir.path(),
            self.client_port,
            self.peer_port,
            self.tls.as_ref(),
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy on port {}", self.client_port);
    }

    /// Turn on authentication with a `root` user of `password` (through
    /// etcd's JSON gateway, as `etcdctl user add / auth enable` would).
    pub fn enable_auth(&self, password: &str) {
        assert!(self.tls.is_none(), "auth is set up over plain HTTP here");
        let calls = [
            ("/v3/auth/role/add", r#"{"name":"root"}"#.to_string()),
            (
                "/v3/auth/user/add",
                format!(r#"{{"name":"root","password":"{password}"}}"#),
            ),
            (
                "/v3/auth/user/grant",
                r#"{"user":"root","role":"root"}"#.to_string(),
            ),
            ("/v3/auth/enable", "{}".to_string()),
        ];
        for (path, body) in calls {
            let answer = self.post(path, &body);
            assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        }
    }

    fn post(&self, path: &str, body: &str) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.client_port)).expect("connect to etcd");
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write to etcd");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let req = "GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n";
        let mut out = String::new();
        match &self.tls {
            None => {
                let mut s = s;
                if s.write_all(req.as_bytes()).is_err() {
                    return false;
                }
                let _ = s.read_to_string(&mut out);
            }
            Some((_, _, ca)) => {
                let config = super::tls::client_config(ca, &[]);
                let Ok(name) = rustls::pki_types::ServerName::try_from("127.0.0.1") else {
                    return false;
                };
                let Ok(conn) = rustls::ClientConnection::new(config, name) else {
                    return false;
                };
                let mut tls = rustls::StreamOwned::new(conn, s);
                if tls.write_all(req.as_bytes()).is_err() {
                    return false;
                }
                let _ = tls.read_to_string(&mut out);
            }
        }
        out.contains("\"health\":\"true\"")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The import corpus (tests/import/): a copy wired to the test's
//! backends and free ports, with a fresh certificate, and the real nginx
//! and HAProxy to validate and run it.

use super::backend::Backend;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read corpus") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

pub fn rewrite_all(dir: &Path, subs: &[(String, String)]) {
    for e in std::fs::read_dir(dir).expect("read") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rewrite_all(&p, subs);
        } else if let Ok(mut text) = std::fs::read_to_string(&p) {
            for (a, b) in subs {
                text = text.replace(a.as_str(), b);
            }
            std::fs::write(&p, text).expect("write");
        }
    }
}

/// A copy of corpus `kind` wired to `backends` and to free ports, with a
/// fresh certificate.
pub struct Corpus {
    /// The copy.
    pub dir: tempfile::TempDir,
    /// The plain HTTP port the original proxy listens on.
    pub plain: u16,
    /// Its TLS port.
    pub tls: u16,
    /// The CA of the certificate its TLS listener serves (trust it).
    pub cert_pem: String,
}

impl Corpus {
    pub fn new(kind: &str, backends: &[Backend]) -> Corpus {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/import")
            .join(kind);
        copy_dir(&src, dir.path());
        let (plain, tls) = (free_port(), free_port());
        let mut subs: Vec<(String, String)> = backends
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("127.0.0.1:1800{}", i + 1), b.addr.to_string()))
            .collect();
        subs.push(("listen 8080".into(), format!("listen 127.0.0.1:{plain}")));
        subs.push(("listen 8443".into(), format!("listen 127.0.0.1:{tls}")));
        subs.push(("127.0.0.1:8080".into(), format!("127.0.0.1:{plain}")));
        subs.push(("127.0.0.1:8443".into(), format!("127.0.0.1:{tls}")));
        rewrite_all(dir.path(), &subs);
        let ca = super::tls::TestCa::new("corpus CA");
        let pair = ca.leaf(&["shop.example.com", "www.shop.example.com"]);
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        // HAProxy reads certificate and key from one PEM file.
        let pem = match kind {
            "haproxy" => format!("{}{}", pair.cert, pair.key),
            _ => pair.cert.clone(),
        };
        std::fs::write(certs.join("shop.pem"), pem).expect("cert");
        std::fs::write(certs.join("shop.key"), &pair.key).expect("key");
        for d in ["logs", "run", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Corpus {
            dir,
            plain,
            tls,
            cert_pem: ca.pem(),
        }
    }

    pub fn main_file(&self, kind: &str) -> PathBuf {
        self.dir.path().join(if kind == "nginx" {
            "nginx.conf"
        } else {
            "haproxy.cfg"
        })
    }

    /// `cutover import`: (exit code, TOML, report JSON).
    pub fn import(&self, kind: &str) -> (i32, String, serde_json::Value) {
        let out = self.dir.path().join("cutover.toml");
        let report = self.dir.path().join("report.json");
        let status = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["import", kind])
            .arg(self.main_file(kind))
            .arg("-o")
            .arg(&out)
            .arg("--report")
            .arg(&report)
            .stderr(Stdio::null())
            .status()
            .expect("run cutover import");
        let toml = std::fs::read_to_string(&out).expect("imported config");
        let json = serde_json::from_str(&std::fs::read_to_string(&report).expect("report"))
            .expect("report JSON");
        (status.code().unwrap_or(-1), toml, json)
    }
}

/// Stops the process when dropped: SIGTERM, so nginx's master takes its
/// workers with it (a killed master leaves them running), then SIGKILL if
/// it has not gone within 5 s.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: sending a signal to our own child has no memory effects.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn nginx_t(c: &Corpus) {
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(c.dir.path())
        .arg("-c")
        .arg(c.main_file("nginx"))
        .output()
        .expect("nginx is installed (scripts/setup.sh test)");
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn haproxy_c(c: &Corpus) {
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(c.main_file("haproxy"))
        .current_dir(c.dir.path())
        .output()
        .expect("haproxy is installed (scripts/setup.sh test)");
    assert!(
        out.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

//! Every example in `config/` loads; every fixture in `config/invalid/`
//! fails with the position, field and message its first line announces:
//! `# expect: LINE:COL FIELD :: fragment`. Checked through the library and
//! through `cutover check` / `cutover run` (exit code 1, one-line error).
// Test and bench code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use cutover::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .expect("config dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

struct Expect {
    line: usize,
    col: usize,
    field: String,
    fragment: String,
}

fn expectation(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).expect("read fixture");
    let first = text.lines().next().unwrap_or("");
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: first line must be '# expect: …'", path.display()));
    let (head, fragment) = rest.split_once(" :: ").expect("' :: ' in expectation");
    let mut parts = head.splitn(2, ' ');
    let pos = parts.next().unwrap_or("");
    let field = parts.next().unwrap_or("").trim().to_string();
    let (line, col) = pos.split_once(':').expect("LINE:COL");
    Expect {
        line: line.parse().expect("line"),
        col: col.parse().expect("col"),
        field,
        fragment: fragment.trim().to_string(),
    }
}

#[test]
fn every_example_config_is_valid() {
    let examples = files("config");
    assert!(examples.len() >= 3, "examples: {examples:?}");
    for path in examples {
        if let Err(e) = Config::load(&path) {
            panic!("{} should be valid: {e}", path.display());
        }
    }
}

#[test]
fn every_invalid_fixture_fails_where_it_says() {
    let fixtures = files("config/invalid");
    assert!(fixtures.len() >= 15, "fixtures: {fixtures:?}");
    for path in fixtures {
        let exp = expectation(&path);
        let err = match Config::load(&path) {
            Ok(_) => panic!("{} should be rejected", path.display()),
            Err(e) => e,
        };
        let pos = err.position().expect("error has a position");
        let msg = err.to_string();
        assert_eq!(
            (pos.line, pos.col),
            (exp.line, exp.col),
            "{}: {msg}",
            path.display()
        );
        assert!(
            err.field().unwrap_or("").starts_with(&exp.field),
            "{}: field {:?} does not start with {:?}",
            path.display(),
            err.field(),
            exp.field
        );
        assert!(
            msg.contains(&exp.fragment),
            "{}: {msg:?} lacks {:?}",
            path.display(),
            exp.fragment
        );
        assert!(
            msg.starts_with(&format!("{}:{}:{}: ", path.display(), exp.line, exp.col)),
            "FILE:LINE:COL prefix: {msg}"
        );
    }
}

fn cutover(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .output()
        .expect("run cutover")
}

#[test]
fn check_accepts_examples_with_a_summary() {
    for path in files("config") {
        let out = cutover(&["check", "-c", path.to_str().expect("utf-8 path")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": OK"), "{stdout}");
        assert!(stdout.contains("routes"), "{stdout}");
    }
    let out = cutover(&["check", "-c", "config/cutover.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("step 5:   100% on cloud"),
        "timeline: {stdout}"
    );
}

#[test]
fn check_and_run_reject_each_fixture_with_exit_1() {
    for path in files("config/invalid") {
        let exp = expectation(&path);
        let p = path.to_str().expect("utf-8 path");
        for cmd in ["check", "run"] {
            let out = cutover(&[cmd, "-c", p]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd} {p}: {stderr}");
            assert!(
                stderr.starts_with(&format!("{p}:{}:{}: ", exp.line, exp.col)),
                "{cmd} {p}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        }
    }
}

#[test]
fn a_missing_file_and_bad_usage_have_their_exit_codes() {
    let out = cutover(&["check", "-c", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
    let out = cutover(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cutover(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cutover "));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[proxy]\nlisten = [\"{addr}\"]\n[pools.a]\nbackends = [\"127.0.0.1:9\"]\n[[routes]]\nname = \"r\"\nsplit = {{ a = 1 }}\n"),
    )
    .expect("write");
    let out = cutover(&["run", "-c", path.to_str().expect("path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn check_fails_whatever_run_fails_at_load() {
    // A backend host that does not resolve: `check` used to pass it while
    // `run` refused to start. (`.invalid` never resolves, RFC 6761.)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [pools.app]\nbackends = [\"backend.invalid:80\"]\n[[routes]]\nname = \"all\"\nsplit = { app = 100 }\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    for cmd in ["check", "run"] {
        let out = cutover(&[cmd, "-c", path]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains("backend.invalid:80"), "{cmd}: {err}");
    }
    // Checking elsewhere than where it runs: without DNS it passes.
    let out = cutover(&["check", "--skip-dns", "-c", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_warns_about_what_is_valid_but_likely_unmeant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[pools.app]\nbackends = [\"127.0.0.1:3000\"]\n[pools.spare]\nbackends = [\"127.0.0.1:3001\"]\n\
         [[routes]]\nname = \"all\"\nsplit = { app = 100 }\n\
         [[routes]]\nname = \"api\"\nmatch = { path_prefix = \"/api\" }\nsplit = { app = 100 }\n",
    )
    .unwrap();
    let out = cutover(&["check", "-c", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: pool spare is not used by any route"),
        "{text}"
    );
    assert!(
        text.contains(
            "warning: route api is never used: route all before it matches every request"
        ),
        "{text}"
    );
}

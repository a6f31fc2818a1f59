//! The deployment files in `deploy/` are valid and agree with cutover:
//! every Kubernetes manifest passes strict schema validation
//! (`kubernetes-validate`, installed into `target/deploy-venv` by
//! `scripts/setup.sh deploy`; it ships the schemas, so nothing is fetched
//! while validating), the config in the ConfigMap passes the real
//! `cutover check`, the Deployment's drain and probe settings fit that
//! config, and the systemd units reload, drain and upgrade as documented
//! (and pass `systemd-analyze verify` where it is installed).
// Test code may unwrap: a panic there fails the run, not a proxy.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.30.0";

/// An admin token long enough for `[admin] token_env` (at least 16).
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Everything a command printed, for failure messages.
fn printed(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The virtualenv with kubernetes-validate, set up once per test run.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("scripts/setup.sh"))
            .arg("deploy")
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/setup.sh deploy failed\n{}",
            printed(&out)
        );
        let venv = root().join("target/deploy-venv");
        assert!(
            venv.join("bin/kubernetes-validate").is_file(),
            "setup left no {}/bin/kubernetes-validate",
            venv.display()
        );
        venv
    })
}

/// `deploy/k8s/*.yaml` but the kustomization, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "too few manifests in {}", dir.display());
    files
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    Command::new(venv().join("bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(files)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------- YAML by hand

/// Indentation of a line, in spaces.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_comment_or_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The value of the literal block scalar `key: |` (as YAML reads it with
/// the default "clip" chomping: one final newline).
fn block_scalar(yaml: &str, key: &str) -> String {
    let header = format!("{key}: |");
    let mut lines = yaml.lines();
    let head = lines
        .by_ref()
        .find(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no `{header}` line"));
    let mut body: Vec<&str> = Vec::new();
    let mut at: Option<usize> = None;
    for line in lines {
        if line.trim().is_empty() {
            body.push("");
            continue;
        }
        let n = indent(line);
        let i = *at.get_or_insert(n);
        if n < i || n <= indent(head) {
            break;
        }
        body.push(&line[i..]);
    }
    while body.last() == Some(&"") {
        body.pop();
    }
    assert!(!body.is_empty(), "`{header}` is empty");
    body.join("\n") + "\n"
}

/// The lines under the first `key:` line (more indented than it), without
/// comments and blank lines.
fn section<'a>(yaml: &'a str, key: &str) -> Vec<&'a str> {
    let want = format!("{key}:");
    let mut lines = yaml.lines();
    let head = lines
        .by_ref()
        .find(|l| {
            let t = l.trim().trim_start_matches("- ");
            t == want || t.starts_with(&format!("{want} "))
        })
        .unwrap_or_else(|| panic!("no `{want}` line"));
    lines
        .filter(|l| !is_comment_or_blank(l))
        .take_while(|l| indent(l) > indent(head))
        .collect()
}

/// The value of the first `key: value` among `lines` (list dashes ignored).
fn value<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    let want = format!("{key}:");
    lines.iter().find_map(|l| {
        l.trim()
            .trim_start_matches("- ")
            .strip_prefix(&want)
            .map(|v| v.trim().trim_matches('"'))
    })
}

/// The non-comment lines of a YAML or unit file.
fn code(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !is_comment_or_blank(l)).collect()
}

// ------------------------------------------------------------ the config

/// The config carried by configmap.yaml.
fn configmap_config() -> String {
    block_scalar(&read("deploy/k8s/configmap.yaml"), "cutover.toml")
}

fn config_table() -> toml::Table {
    toml::from_str(&configmap_config()).unwrap()
}

fn duration(v: &str) -> Duration {
    humantime::parse_duration(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

/// `[proxy] grace` of a config (30 s when not set).
fn grace(cfg: &toml::Table) -> Duration {
    cfg.get("proxy")
        .and_then(|p| p.get("grace"))
        .and_then(|g| g.as_str())
        .map_or(Duration::from_secs(30), duration)
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit_once(':').unwrap().1.parse().unwrap()
}

// ------------------------------------------------------------ Kubernetes

#[test]
fn manifests_pass_strict_kubernetes_schema_validation() {
    let files = manifests();
    let out = kubernetes_validate(&files);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", printed(&out));
    // An unknown kind or apiVersion is only a warning, with exit 0.
    assert!(
        !text.contains("WARN") && !text.contains("ERROR"),
        "{}",
        printed(&out)
    );
    for f in &files {
        let name = f.display().to_string();
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("INFO {name} passed"))),
            "{name} was not validated\n{}",
            printed(&out)
        );
    }
}

#[test]
fn the_validator_rejects_what_kubernetes_would() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = read("deploy/k8s/deployment.yaml").replace("periodSeconds:", "periodSecond:");
    std::fs::write(&bad, text).unwrap();
    let out = kubernetes_validate(&[bad]);
    assert!(!out.status.success(), "{}", printed(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("periodSecond"),
        "{}",
        printed(&out)
    );
}

#[test]
fn kustomization_lists_every_manifest_but_the_example_secret() {
    let k = read("deploy/k8s/kustomization.yaml");
    let mut listed: Vec<&str> = section(&k, "resources")
        .iter()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .collect();
    listed.sort_unstable();
    let mut want: Vec<String> = manifests()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "secret.example.yaml")
        .collect();
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn configmap_config_passes_cutover_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cutover.toml");
    std::fs::write(&file, configmap_config()).unwrap();
    // The cloud pool is a cluster Service name, which resolves only in the
    // cluster: checked here without DNS.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "--skip-dns", "-c"])
        .arg(&file)
        .env("CUTOVER_ADMIN_TOKEN", TOKEN)
        .env_remove("CUTOVER_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(": OK"), "{}", printed(&out));
    // The one warning expected: the shift starts when the first replica
    // loads the config (the fleet keeps that start in etcd).
    let warnings: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", printed(&out));
    assert!(
        warnings[0].contains("starts moving traffic as soon as this config loads"),
        "{}",
        printed(&out)
    );
}

#[test]
fn configmap_config_needs_its_token() {
    // The token really comes from the environment the Deployment sets.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cutover.toml");
    std::fs::write(&file, configmap_config()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["check", "-c"])
        .arg(&file)
        .env_remove("CUTOVER_ADMIN_TOKEN")
        .env_remove("CUTOVER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CUTOVER_ADMIN_TOKEN"),
        "{}",
        printed(&out)
    );
}

#[test]
fn configmap_extraction_matches_a_yaml_parser() {
    let py = "import sys, yaml\n\
              d = yaml.safe_load(open(sys.argv[1]))\n\
              sys.stdout.write(d['data']['cutover.toml'])\n";
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", py])
        .arg(root().join("deploy/k8s/configmap.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), configmap_config());
}

#[test]
fn configmap_config_is_a_fleet_with_one_shifting_route() {
    let cfg = config_table();
    let proxy = &cfg["proxy"];
    assert_eq!(
        proxy["listen"].as_array().unwrap()[0].as_str(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(grace(&cfg), Duration::from_secs(30));
    let admin = &cfg["admin"];
    assert_eq!(admin["listen"].as_str(), Some("0.0.0.0:9901"));
    assert_eq!(admin["token_env"].as_str(), Some("CUTOVER_ADMIN_TOKEN"));

    let cluster = cfg["cluster"].as_table().unwrap();
    assert!(!cluster["etcd"].as_array().unwrap().is_empty());
    // Every replica must default to its own (pod) name.
    assert!(!cluster.contains_key("name"), "[cluster] name is set");

    let pools = cfg["pools"].as_table().unwrap();
    for p in ["onprem", "cloud"] {
        assert!(
            pools[p].get("health").is_some(),
            "pool {p} has no health check"
        );
    }
    let routes = cfg["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["name"].as_str(), Some("www"));
    let shift = &routes[0]["shift"];
    let steps: Vec<i64> = shift["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_integer().unwrap())
        .collect();
    assert_eq!(steps, [1, 5, 25, 100]);
    assert_eq!(shift["hold"].as_str(), Some("10m"));
    assert!(shift.get("gate").is_some(), "the shift has no gate");
}

#[test]
fn deployment_drains_within_its_grace_and_probes_the_admin_port() {
    let d = read("deploy/k8s/deployment.yaml");
    let cfg = config_table();
    let grace = grace(&cfg);
    let lines = code(&d);

    // preStop sleep, then SIGTERM and the drain: all before SIGKILL.
    let tgps: u64 = value(&lines, "terminationGracePeriodSeconds")
        .unwrap()
        .parse()
        .unwrap();
    let pre_stop = section(&d, "preStop");
    let command = value(&pre_stop, "command").unwrap();
    let words: Vec<&str> = command
        .trim_matches(['[', ']'])
        .split(',')
        .map(|w| w.trim().trim_matches('"'))
        .collect();
    assert!(
        words.len() == 2 && words[0] == "sleep",
        "preStop is not a sleep: {command}"
    );
    let sleep: u64 = words[1].parse().unwrap();
    assert!(sleep > 0);
    assert!(
        Duration::from_secs(tgps) > grace + Duration::from_secs(sleep),
        "terminationGracePeriodSeconds {tgps} must exceed the preStop sleep {sleep}s + grace {grace:?}"
    );

    // Named ports: the config's listeners.
    let admin_port = port_of(cfg["admin"]["listen"].as_str().unwrap());
    let http_port = port_of(
        cfg["proxy"]["listen"].as_array().unwrap()[0]
            .as_str()
            .unwrap(),
    );
    let port_named = |name: &str| -> u16 {
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("- name: {name}"))
            .unwrap_or_else(|| panic!("no port named {name}"));
        value(&lines[at + 1..at + 2], "containerPort")
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(port_named("http"), http_port);
    assert_eq!(port_named("admin"), admin_port);

    let probe = |which: &str, path: &str| {
        let p = section(&d, which);
        assert_eq!(value(&p, "path"), Some(path), "{which}");
        let port = value(&p, "port").unwrap();
        assert!(
            port == "admin" || port == admin_port.to_string(),
            "{which} probes port {port}, not the admin port"
        );
    };
    probe("readinessProbe", "/readyz");
    probe("livenessProbe", "/healthz");

    // The token the config names comes from the Secret of the example.
    let env = section(&d, "env");
    assert_eq!(value(&env, "name"), cfg["admin"]["token_env"].as_str());
    let secret_ref = section(&d, "secretKeyRef");
    let secret = read("deploy/k8s/secret.example.yaml");
    assert_eq!(
        value(&secret_ref, "name"),
        value(&section(&secret, "metadata"), "name")
    );
    let key = value(&secret_ref, "key").unwrap();
    assert!(value(&section(&secret, "stringData"), key).is_some());

    // The ConfigMap as a directory (a subPath mount never sees updates),
    // where `run -c` looks.
    assert!(
        !lines.iter().any(|l| l.contains("subPath")),
        "subPath mount"
    );
    let mounts = section(&d, "volumeMounts");
    assert!(mounts.iter().any(|l| l.trim() == "mountPath: /etc/cutover"));
    assert!(d.contains(r#"args: ["run", "-c", "/etc/cutover/cutover.toml"]"#));
    let cm = read("deploy/k8s/configmap.yaml");
    let cm_name = value(&section(&cm, "metadata"), "name").unwrap();
    assert_eq!(value(&section(&d, "configMap"), "name"), Some(cm_name));

    // Three replicas, at most one away at a time.
    assert_eq!(value(&lines, "replicas"), Some("3"));
    let pdb = read("deploy/k8s/pdb.yaml");
    assert_eq!(value(&code(&pdb), "minAvailable"), Some("2"));
    for (k, v) in [
        ("runAsNonRoot", "true"),
        ("readOnlyRootFilesystem", "true"),
        ("allowPrivilegeEscalation", "false"),
    ] {
        assert_eq!(value(&lines, k), Some(v), "{k}");
    }
    assert!(d.contains("podAntiAffinity:"));
}

// ------------------------------------------------------------ systemd

/// A unit file's `(section, key, value)` entries, in order.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        assert!(!t.ends_with('\\'), "continued line: {t}");
        let (k, v) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {t}"));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

/// Every value of `[Service] key`.
fn service_values<'a>(entries: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

/// The one value of `[Service] key`.
fn service_value<'a>(entries: &'a [(String, String, String)], key: &str) -> &'a str {
    match service_values(entries, key).as_slice() {
        [v] => v,
        other => panic!("[Service] {key}: {other:?}"),
    }
}

/// The longest grace a unit may have to wait for: the ConfigMap's config,
/// the example config and the default.
fn longest_grace() -> Duration {
    let example: toml::Table = toml::from_str(&read("config/cutover.toml")).unwrap();
    grace(&config_table())
        .max(grace(&example))
        .max(Duration::from_secs(30))
}

fn upgrade_sock(exec_start: &str) -> &str {
    let mut words = exec_start.split_whitespace();
    words.find(|w| *w == "--upgrade-sock");
    words
        .next()
        .unwrap_or_else(|| panic!("no --upgrade-sock in {exec_start}"))
}

#[test]
fn systemd_unit_checks_reloads_and_drains() {
    let unit = unit_entries(&read("deploy/systemd/cutover.service"));
    let v = |k| service_value(&unit, k);
    assert_eq!(v("Type"), "simple");
    assert!(
        v("ExecStart").starts_with("/usr/local/bin/cutover run -c /etc/cutover/cutover.toml"),
        "{}",
        v("ExecStart")
    );
    assert!(
        !v("ExecStart").split_whitespace().any(|w| w == "--upgrade"),
        "{}",
        v("ExecStart")
    );
    assert_eq!(
        v("ExecStartPre"),
        "/usr/local/bin/cutover check -c /etc/cutover/cutover.toml"
    );
    assert!(
        service_values(&unit, "ExecReload").contains(&"/bin/kill -HUP $MAINPID"),
        "{:?}",
        service_values(&unit, "ExecReload")
    );
    assert_eq!(v("KillSignal"), "SIGTERM");
    let stop = duration(v("TimeoutStopSec"));
    assert!(stop > longest_grace(), "TimeoutStopSec {stop:?}");
    assert_eq!(v("Restart"), "on-failure");
    assert_eq!(v("EnvironmentFile"), "-/etc/default/cutover");
    let user = v("User");
    assert!(!user.is_empty() && user != "root", "User={user}");
    assert_eq!(v("NoNewPrivileges"), "yes");
    assert_eq!(v("ProtectSystem"), "strict");
    assert!(v("ReadWritePaths").contains("/var/lib/cutover"));
    assert_eq!(v("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert!(unit
        .iter()
        .any(|(s, k, v)| s == "Install" && k == "WantedBy" && v == "multi-user.target"));
}

#[test]
fn systemd_upgrade_unit_takes_over_through_the_same_socket() {
    let unit = unit_entries(&read("deploy/systemd/cutover.service"));
    let up = unit_entries(&read("deploy/systemd/cutover-upgrade.service"));
    let start = service_value(&up, "ExecStart");
    assert!(
        start.starts_with("/usr/local/bin/cutover run -c /etc/cutover/cutover.toml")
            && start.split_whitespace().any(|w| w == "--upgrade"),
        "{start}"
    );
    assert_eq!(
        upgrade_sock(start),
        upgrade_sock(service_value(&unit, "ExecStart"))
    );
    let post = service_value(&up, "ExecStartPost");
    assert!(
        post.contains("SIGQUIT") && post.ends_with("cutover.service"),
        "{post}"
    );
    // The new process must not come up without a config check.
    assert_eq!(
        service_value(&up, "ExecStartPre"),
        service_value(&unit, "ExecStartPre")
    );
    assert!(duration(service_value(&up, "TimeoutStopSec")) > longest_grace());
    // The same user, environment and sandbox.
    for key in [
        "User",
        "Group",
        "EnvironmentFile",
        "KillSignal",
        "RuntimeDirectory",
        "RuntimeDirectoryPreserve",
        "StateDirectory",
        "ReadWritePaths",
        "AmbientCapabilities",
        "CapabilityBoundingSet",
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "SystemCallFilter",
    ] {
        assert_eq!(
            service_values(&up, key),
            service_values(&unit, key),
            "[Service] {key}"
        );
    }
}

/// `systemd-analyze` on PATH, if there.
fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file())
}

/// `systemd-analyze verify` on copies of `units` in which the binary is the
/// one just built (verify insists that the executables exist).
fn verify(tool: &Path, units: &[(&str, String)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let mut paths = Vec::new();
    for (name, text) in units {
        let p = dir.path().join(name);
        std::fs::write(&p, text.replace("/usr/local/bin/cutover", bin)).unwrap();
        paths.push(p);
    }
    Command::new(tool)
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap()
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(tool) = systemd_analyze() else {
        eprintln!("systemd-analyze not found: skipping `systemd-analyze verify`");
        return;
    };
    let units = [
        ("cutover.service", read("deploy/systemd/cutover.service")),
        (
            "cutover-upgrade.service",
            read("deploy/systemd/cutover-upgrade.service"),
        ),
    ];
    let out = verify(&tool, &units);
    assert!(out.status.success(), "{}", printed(&out));
    // verify exits 0 on an unknown key or a bad value, but says so.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("cutover"), "{}", printed(&out));

    // And it does say so: a misspelt key is reported.
    let bad = [(
        "cutover.service",
        units[0].1.replace("KillSignal=", "KilSignal="),
    )];
    let out = verify(&tool, &bad);
    assert!(printed(&out).contains("KilSignal"), "{}", printed(&out));
}

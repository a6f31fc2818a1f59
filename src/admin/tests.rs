//! The admin API without sockets: routing, methods, auth, bodies.

use super::*;
use crate::config::Config;

fn control(extra_admin: &str) -> Arc<Control> {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{extra_admin}\n\
         [pools.onprem]\nbackends = [\"127.0.0.1:1\"]\n[pools.cloud]\nbackends = [\"127.0.0.1:2\"]\n\
         [[routes]]\nname = \"api\"\nsplit = {{ onprem = 100, cloud = 0 }}\n"
    );
    let cfg = Config::from_str_named(&text, std::path::Path::new("t.toml")).unwrap();
    Control::new(cfg).unwrap()
}

fn req(method: Method, path: &str, auth: Option<&str>, body: &str) -> AdminRequest {
    AdminRequest {
        method,
        path: path.into(),
        authorization: auth.map(str::to_string),
        body: Bytes::from(body.to_string()),
    }
}

async fn call(
    api: &AdminApi,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> AdminResponse {
    api.handle(req(method, path, auth, body)).await
}

#[tokio::test]
async fn health_services_and_unknown_paths() {
    let api = AdminApi::new(control(""), None);
    let r = call(&api, Method::GET, "/healthz", None, "").await;
    assert_eq!(
        (r.status, r.json_body().unwrap()),
        (200, json!({"status":"healthy"}))
    );
    let r = call(&api, Method::GET, "/services", None, "").await;
    let v = r.json_body().unwrap();
    assert_eq!(v[0]["name"], "onprem/127.0.0.1:1");
    assert_eq!(v[0]["status"], "healthy");
    assert_eq!(v[1]["pool"], "cloud");
    assert_eq!(call(&api, Method::GET, "/nope", None, "").await.status, 404);
    // Not ready until the app says so.
    assert_eq!(
        call(&api, Method::GET, "/readyz", None, "").await.status,
        503
    );
}

#[tokio::test]
async fn methods_are_checked() {
    let api = AdminApi::new(control(""), None);
    let r = call(&api, Method::GET, "/routes/api/split", None, "").await;
    assert_eq!(r.status, 405);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| *k == "allow" && v.contains("POST")));
    assert_eq!(
        call(&api, Method::POST, "/status", None, "").await.status,
        405
    );
    assert_eq!(
        call(&api, Method::GET, "/reload", None, "").await.status,
        405
    );
}

#[tokio::test]
async fn auth_matrix() {
    // A token file, not an environment variable: tests run in parallel
    // threads, and setting the environment is not thread-safe.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token-0123456789\n").unwrap();
    let api = AdminApi::new(
        control(&format!("token_file = {:?}", token.display().to_string())),
        None,
    );
    assert_eq!(
        call(&api, Method::GET, "/healthz", None, "").await.status,
        200
    );
    assert_eq!(
        call(&api, Method::GET, "/readyz", None, "").await.status,
        503
    );
    let missing = call(&api, Method::GET, "/status", None, "").await;
    assert_eq!(missing.status, 401);
    assert!(!String::from_utf8_lossy(&missing.body).contains("s3cret"));
    assert_eq!(
        call(&api, Method::GET, "/status", Some("Bearer wrong"), "")
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/status",
            Some("s3cret-token-0123456789"),
            ""
        )
        .await
        .status,
        401
    );
    let ok = call(
        &api,
        Method::GET,
        "/status",
        Some("Bearer s3cret-token-0123456789"),
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(
        !String::from_utf8_lossy(&ok.body).contains("s3cret"),
        "the token never shows"
    );
    // Unknown paths do not reveal themselves without the token.
    assert_eq!(call(&api, Method::GET, "/nope", None, "").await.status, 401);
}

#[tokio::test]
async fn manual_split_validates_its_body() {
    let c = control("");
    let api = AdminApi::new(c.clone(), None);
    let r = call(
        &api,
        Method::PUT,
        "/routes/api/split",
        None,
        r#"{"onprem":70,"cloud":30}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json_body());
    assert_eq!(r.json_body().unwrap()["split"]["cloud"], 30.0);
    let snap = c.snapshot();
    assert_eq!(snap.routes[0].buckets, vec![7000, 3000]);
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/routes/nope/split",
            None,
            r#"{"onprem":1}"#
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/routes/api/split",
            None,
            r#"{"mars":1}"#
        )
        .await
        .status,
        422
    );
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/routes/api/split",
            None,
            r#"{"onprem":0}"#
        )
        .await
        .status,
        422
    );
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/routes/api/split",
            None,
            r#"{"onprem":-1,"cloud":2}"#
        )
        .await
        .status,
        422
    );
    assert_eq!(
        call(&api, Method::PUT, "/routes/api/split", None, "not json")
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn drain_and_undrain() {
    let c = control("");
    let api = AdminApi::new(c.clone(), None);
    let r = call(
        &api,
        Method::POST,
        "/pools/onprem/backends/127.0.0.1:1/drain",
        None,
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.json_body().unwrap()["status"].clone()),
        (200, json!("draining"))
    );
    let r = call(&api, Method::GET, "/services", None, "").await;
    assert_eq!(r.json_body().unwrap()[0]["status"], "draining");
    let r = call(
        &api,
        Method::POST,
        "/pools/onprem/backends/127.0.0.1%3A1/undrain",
        None,
        "",
    )
    .await;
    assert_eq!(r.json_body().unwrap()["status"], "healthy");
    assert_eq!(
        call(
            &api,
            Method::POST,
            "/pools/onprem/backends/1.2.3.4:5/drain",
            None,
            ""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &api,
            Method::POST,
            "/pools/mars/backends/1.2.3.4:5/drain",
            None,
            ""
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn shift_controls_need_a_route_with_a_shift() {
    let api = AdminApi::new(control(""), None);
    assert_eq!(
        call(&api, Method::POST, "/routes/nope/shift/pause", None, "")
            .await
            .status,
        404
    );
    assert_eq!(
        call(&api, Method::POST, "/routes/api/shift/pause", None, "")
            .await
            .status,
        409
    );
    assert_eq!(
        call(&api, Method::POST, "/routes/api/shift/explode", None, "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn reload_without_a_file_is_not_applicable() {
    let api = AdminApi::new(control(""), None);
    assert_eq!(
        call(&api, Method::POST, "/reload", None, "").await.status,
        409
    );
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}

fn shift_control() -> Arc<Control> {
    let text = "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [pools.onprem]\nbackends = [\"127.0.0.1:1\"]\n[pools.cloud]\nbackends = [\"127.0.0.1:2\"]\n\
         [[routes]]\nname = \"api\"\nsplit = { onprem = 100, cloud = 0 }\n\
         [routes.shift]\nto = \"cloud\"\nsteps = [10, 50, 100]\nhold = \"1h\"\n";
    let cfg = Config::from_str_named(text, std::path::Path::new("t.toml")).unwrap();
    Control::new(cfg).unwrap()
}

#[tokio::test]
async fn shift_controls_move_the_shift() {
    let c = shift_control();
    let api = AdminApi::new(c.clone(), None);
    let state = |r: &AdminResponse| r.json_body().unwrap()["state"].clone();
    let r = call(&api, Method::POST, "/routes/api/shift/pause", None, "").await;
    assert_eq!((r.status, state(&r)), (200, json!("paused")));
    assert_eq!(
        call(&api, Method::POST, "/routes/api/shift/pause", None, "")
            .await
            .status,
        409
    );
    let r = call(&api, Method::POST, "/routes/api/shift/advance", None, "").await;
    assert_eq!(
        (state(&r), r.json_body().unwrap()["share"].clone()),
        (json!("running"), json!(50.0))
    );
    assert_eq!(c.snapshot().routes[0].buckets, vec![5000, 5000]);
    let r = call(&api, Method::POST, "/routes/api/shift/rollback", None, "").await;
    assert_eq!(state(&r), json!("rolled_back"));
    assert_eq!(
        c.snapshot().routes[0].buckets,
        vec![0, 10000],
        "cloud (first) at 0 %"
    );
    assert_eq!(
        call(&api, Method::POST, "/routes/api/shift/rollback", None, "")
            .await
            .status,
        409
    );
    let r = call(&api, Method::POST, "/routes/api/shift/resume", None, "").await;
    assert_eq!(
        (state(&r), r.json_body().unwrap()["step"].clone()),
        (json!("running"), json!(1))
    );
    // A manual split pauses the shift; resume hands control back to it.
    let r = call(
        &api,
        Method::PUT,
        "/routes/api/split",
        None,
        r#"{"onprem":70,"cloud":30}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let st = call(&api, Method::GET, "/status", None, "")
        .await
        .json_body()
        .unwrap();
    assert_eq!(st["routes"][0]["shift"]["state"], "paused");
    assert_eq!(st["routes"][0]["shift"]["manual_split"], true);
    call(&api, Method::POST, "/routes/api/shift/resume", None, "").await;
    assert_eq!(c.snapshot().routes[0].buckets, vec![1000, 9000]);
}

//! Tests of the answer comparison and noise learning.

use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn status_then_headers_then_body() {
    let hp = h(&[JSON, ("x-version", "1"), ("date", "Mon")]);
    let hm = h(&[JSON, ("x-version", "2"), ("date", "Tue")]);
    let p = Answer {
        status: 200,
        headers: &hp,
        body: b"{\"a\":1}",
    };
    let m = Answer {
        status: 503,
        headers: &hm,
        body: b"{\"a\":1}",
    };
    let none = Ignore::default();
    assert_eq!(
        compare(&p, &m, &none),
        Some(Mismatch::Status {
            primary: 200,
            mirror: 503
        })
    );
    let m = Answer { status: 200, ..m };
    assert_eq!(
        compare(&p, &m, &none),
        Some(Mismatch::Header {
            name: "x-version".into()
        })
    );
    let mut ig = Ignore::default();
    ig.headers.insert("x-version".into());
    // `date` differs too, but is never compared.
    assert_eq!(compare(&p, &m, &ig), None);
    let m2 = Answer {
        body: b"{\"a\":2}",
        ..m
    };
    assert_eq!(
        compare(&p, &m2, &ig),
        Some(Mismatch::Body {
            path: Some("$.a".into()),
            primary_len: 7,
            mirror_len: 7
        })
    );
}

#[test]
fn json_is_compared_by_value_with_ignored_paths() {
    let hj = h(&[JSON]);
    let p = Answer {
        status: 200,
        headers: &hj,
        body: br#"{"id":7,"timestamp":1,"items":[{"id":1,"at":5},{"id":2,"at":6}]}"#,
    };
    let m = Answer {
        status: 200,
        headers: &hj,
        body: br#"{"items":[{"at":9,"id":1},{"id":2,"at":8}], "timestamp":2,"id":7}"#,
    };
    let mut ig = Ignore::default();
    assert_eq!(
        compare(&p, &m, &ig).and_then(|x| match x {
            Mismatch::Body { path, .. } => path,
            _ => None,
        }),
        Some("$.items[0].at".into())
    );
    ig.json.insert("$.timestamp".into());
    ig.json.insert("$.items[*].at".into());
    assert_eq!(compare(&p, &m, &ig), None);
    // Not JSON: bytes.
    let ht = h(&[("content-type", "text/plain")]);
    let a = Answer {
        status: 200,
        headers: &ht,
        body: b"x",
    };
    let b = Answer {
        status: 200,
        headers: &ht,
        body: b"yy",
    };
    assert_eq!(
        compare(&a, &b, &ig),
        Some(Mismatch::Body {
            path: None,
            primary_len: 1,
            mirror_len: 2
        })
    );
}

#[test]
fn two_primary_answers_teach_the_noise() {
    let h1 = h(&[JSON, ("x-request-id", "a1")]);
    let h2 = h(&[JSON, ("x-request-id", "b2")]);
    let a = Answer {
        status: 200,
        headers: &h1,
        body: br#"{"price":10,"served_at":"12:00:01","rows":[{"n":1,"t":1}]}"#,
    };
    let b = Answer {
        status: 200,
        headers: &h2,
        body: br#"{"price":10,"served_at":"12:00:02","rows":[{"n":1,"t":2}]}"#,
    };
    let mut ig = Ignore::default();
    assert!(ig.learn(&a, &b));
    assert!(ig.headers.contains("x-request-id"));
    assert!(
        ig.json.contains("$.served_at") && ig.json.contains("$.rows[*].t"),
        "{ig:?}"
    );
    assert!(!ig.learn(&a, &b), "nothing new the second time");
    // Answers of different statuses, or whole bodies, teach nothing.
    let e = Answer { status: 500, ..b };
    assert!(!ig.learn(&a, &e));
    let arr = Answer { body: b"[1]", ..a };
    let arr2 = Answer {
        body: b"[1,2]",
        ..a
    };
    let mut fresh = Ignore::default();
    fresh.learn(&arr, &arr2);
    assert!(!fresh.json.contains("$"));
    let one = Answer {
        body: br#"{"price":1}"#,
        ..a
    };
    let one_f = Answer {
        body: br#"{"price":1.0}"#,
        ..a
    };
    assert_eq!(compare(&one, &one_f, &Ignore::default()), None);
    // The mirror differs only in noise, then in a real field.
    let h3 = h(&[JSON, ("x-request-id", "c3")]);
    let m = Answer {
        status: 200,
        headers: &h3,
        body: br#"{"price":10,"served_at":"12:00:09","rows":[{"n":1,"t":7}]}"#,
    };
    assert_eq!(compare(&a, &m, &ig), None);
    let m = Answer {
        body: br#"{"price":11,"served_at":"12:00:09","rows":[{"n":1,"t":7}]}"#,
        ..m
    };
    assert_eq!(compare(&a, &m, &ig).map(|x| x.kind()), Some("body"));
}

#[test]
fn paths() {
    assert!(path_matches("$.a", "$.a"));
    assert!(path_matches("$.a", "$.a.b"));
    assert!(path_matches("$.a", "$.a[3]"));
    assert!(!path_matches("$.a", "$.ab"));
    assert!(path_matches("$.x[*].y", "$.x[12].y"));
    assert!(!path_matches("$.x[*].y", "$.x[12].z"));
    assert_eq!(generalise("$.x[12].y[0]"), "$.x[*].y[*]");
    assert_eq!(generalise("$[\"a b\"]"), "$[\"a b\"]");
}

#[test]
fn json_paths_are_checked() {
    for ok in ["$", "$.timestamp", "$.items[*].id", "$.items[0]", "$.a.b.c"] {
        assert!(valid_path(ok), "{ok}");
    }
    for bad in [
        "",
        "timestamp",
        "$.",
        "$..a",
        "$.a[",
        "$.a[x]",
        "$a",
        "$.a[]",
    ] {
        assert!(!valid_path(bad), "{bad}");
    }
}

//! Tests of HAProxy ACL criteria and `if` conditions.

use super::*;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn criteria() {
    let (f, _) = criterion(&words("hdr(host) -i shop.example.com www.example.com")).expect("host");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].host.as_deref(), Some("shop.example.com"));
    let (f, _) = criterion(&words("hdr_beg(host) -i api.")).expect("beg");
    assert_eq!(f[0].host.as_deref(), Some("api.*"));
    let (f, _) = criterion(&words("path_beg /static/ /assets/")).expect("path");
    assert_eq!(f[1].path_prefix.as_deref(), Some("/assets/"));
    let (f, _) = criterion(&words("method POST put")).expect("method");
    assert_eq!(f[0].methods, vec!["POST", "PUT"]);
    let (f, _) = criterion(&words("req.hdr(X-User),crc32,mod(100) lt 20")).expect("hash");
    assert_eq!(
        f[0].hash,
        Some(Hash {
            header: "x-user".into(),
            modulo: 100,
            lo: 0,
            hi: 20
        })
    );
    assert!(criterion(&words("src 10.0.0.0/8")).is_err());
    assert!(criterion(&words("hdr_beg(host) api")).is_err());
}

#[test]
fn conditions_combine() {
    let mut acls = Acls::new();
    for l in [
        "a hdr(host) shop.example.com",
        "s path_beg /static/ /assets/",
        "w method POST",
    ] {
        let line = Line {
            words: words(&format!("acl {l}")),
            at: crate::import::record::Place {
                file: "f".into(),
                line: 1,
                col: 1,
                text: String::new(),
            },
        };
        acl_line(&mut acls, &line).expect("acl");
    }
    let alts = condition(&acls, &words("if a s || w")).expect("cond");
    assert_eq!(alts.len(), 3);
    assert_eq!(alts[1].path_prefix.as_deref(), Some("/assets/"));
    assert_eq!(alts[2].methods, vec!["POST"]);
    assert!(condition(&acls, &words("if !a")).is_err());
    assert!(condition(&acls, &words("unless a")).is_err());
    let wide = Frag {
        host: Some("*.example.com".into()),
        ..Frag::default()
    };
    let exact = Frag {
        host: Some("shop.example.com".into()),
        ..Frag::default()
    };
    assert_eq!(
        and(&wide, &exact).and_then(|f| f.host),
        Some("shop.example.com".into())
    );
    let other = Frag {
        host: Some("api.*".into()),
        ..Frag::default()
    };
    assert_eq!(and(&exact, &other), None);
    let anon = condition(&acls, &words("if a { path_beg /x }")).expect("anon");
    assert_eq!(anon[0].path_prefix.as_deref(), Some("/x"));
}

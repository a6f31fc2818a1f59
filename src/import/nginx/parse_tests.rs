//! Tests of the nginx config reader.

use super::*;

fn parse(text: &str) -> Vec<Directive> {
    let tokens = lex(text, "t.conf").expect("lex");
    let mut pos = 0;
    block(&tokens, &mut pos, "t.conf", 0).expect("parse")
}

#[test]
fn quoting_comments_variables_and_positions() {
    let t = parse(
        "# top\nhttp {\n  split_clients \"${remote_addr}AAA\" $v { 10% a; * b; }\n  log_format main '$a \"q\"'; # trailing\n  server_name\n     a.example.com\n     b.example.com;\n}\n",
    );
    assert_eq!(t.len(), 1);
    let http = &t[0];
    assert_eq!((http.line, http.col), (2, 1));
    let sc = &http.children()[0];
    assert_eq!(sc.args, vec!["${remote_addr}AAA", "$v"]);
    assert_eq!(sc.children()[0].name, "10%");
    assert_eq!(sc.children()[1].args, vec!["b"]);
    assert_eq!((sc.line, sc.col), (3, 3));
    assert_eq!(http.children()[1].args, vec!["main", "$a \"q\""]);
    assert_eq!(
        http.children()[2].args,
        vec!["a.example.com", "b.example.com"]
    );
}

#[test]
fn errors_name_the_place() {
    let e = lex("a \"open", "t.conf").err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("t.conf:1:3: unterminated quoted string"));
    let tokens = lex("http {\n  listen 80\n}", "t.conf").expect("lex");
    let mut pos = 0;
    let e = block(&tokens, &mut pos, "t.conf", 0)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("t.conf:3:1: \"listen\" is not terminated by \";\"")
    );
    let tokens = lex("http {\n", "t.conf").expect("lex");
    let mut pos = 0;
    assert!(block(&tokens, &mut pos, "t.conf", 0).is_err());
    let deep = "a {".repeat(10_000);
    let tokens = lex(&deep, "t.conf").expect("lex");
    let mut pos = 0;
    let e = block(&tokens, &mut pos, "t.conf", 0)
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.ends_with("blocks nest too deep")));
}

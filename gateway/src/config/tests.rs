//! The configuration as a whole: defaults, the environment, unknown keys and
//! problems reported together (each section's own rules are tested with it).

use std::path::PathBuf;

use super::*;

#[test]
fn defaults_are_valid_and_loopback_only() {
    let c = Config::from_toml("", Vec::new()).expect("parse");
    c.validate().expect("valid");
    assert_eq!(c.listen.api, "127.0.0.1:7800");
    assert_eq!(c.store.path, PathBuf::from("./sluice-data"));
}

#[test]
fn environment_overrides_the_file() {
    let env = vec![
        ("SLUICE_LISTEN__API".to_owned(), "127.0.0.1:0".to_owned()),
        ("SLUICE_DISPATCH__CONCURRENCY".to_owned(), "9".to_owned()),
        ("SLUICE_API_TOKENS".to_owned(), "crm:abc".to_owned()),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let c = Config::from_toml("[listen]\napi = \"127.0.0.1:1\"\n", env).expect("parse");
    assert_eq!(c.listen.api, "127.0.0.1:0");
    assert_eq!(c.dispatch.concurrency, 9);
    assert_eq!(c.api.tokens, "crm:abc");
}

#[test]
fn unknown_keys_are_refused() {
    let err = Config::from_toml("[listen]\napi = \"127.0.0.1:1\"\ncolour = 1\n", Vec::new());
    assert!(err.expect_err("unknown key").to_string().contains("colour"));
}

#[test]
fn every_problem_is_reported() {
    let text = r#"
        [listen]
        api = "nowhere"
        [store]
        engine = "floppy"
        [tracking]
        max_connections = 0
        [email]
        max_attempts = 0
        [[email.relays]]
        host = ""
        connections = 0
    "#;
    let c = Config::from_toml(text, Vec::new()).expect("parse");
    let ConfigError::Invalid(problems) = c.validate().expect_err("invalid") else {
        panic!("not Invalid")
    };
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

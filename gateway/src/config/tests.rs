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

#[test]
fn a_country_code_is_one_to_three_digits() {
    let problems = |cc: &str| {
        let text = format!("[sms]\ncountry_code = \"{cc}\"\n");
        match Config::from_toml(&text, Vec::new())
            .expect("parse")
            .validate()
        {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems,
            Err(e) => panic!("{e}"),
        }
    };
    for good in ["1", "49", "358"] {
        assert_eq!(problems(good), Vec::<String>::new(), "{good}");
    }
    for bad in ["", "+49", "049", "4912", "de"] {
        let found = problems(bad);
        assert!(
            found.len() == 1 && found[0].starts_with("sms.country_code: "),
            "{bad}: {found:?}"
        );
    }
}

#[test]
fn every_secret_named_but_not_set_is_a_problem() {
    let text = r#"
        [[email.relays]]
        host = "relay.example"
        username = "u"
        password_env = "RELAY_PASSWORD"
        [[sms.smsc]]
        host = "smsc.example"
        system_id = "sluice"
        password_env = "SMSC_PASSWORD"
        [[sms.smsc]]
        host = "smsc2.example"
        system_id = "sluice"
        password_file = "/nonexistent/smsc-password"
        [[webhooks]]
        url = "https://crm.example/hook"
        secret_env = "HOOK_SECRET"
    "#;
    let c = Config::from_toml(text, Vec::new()).expect("parse");
    let ConfigError::Invalid(problems) = c.validate_with(&|_| None).expect_err("unset") else {
        panic!("not Invalid")
    };
    assert_eq!(
        problems[..3],
        [
            "email.relays[0].password_env: environment variable RELAY_PASSWORD is not set",
            "sms.smsc[0].password_env: environment variable SMSC_PASSWORD is not set",
            "webhooks[0].secret_env: environment variable HOOK_SECRET is not set",
        ]
    );
    assert!(
        problems[3]
            .starts_with("sms.smsc[1].password_file: cannot read /nonexistent/smsc-password"),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 4, "{problems:#?}");
    let ConfigError::Invalid(problems) = c
        .validate_with(&|_| Some("s3cret".into()))
        .expect_err("file")
    else {
        panic!("not Invalid")
    };
    assert_eq!(problems.len(), 1, "only the unreadable file: {problems:#?}");
    let ConfigError::Invalid(problems) = c.validate_with(&|_| Some("".into())).expect_err("empty")
    else {
        panic!("not Invalid")
    };
    assert_eq!(
        problems[0],
        "webhooks[0].secret_env: environment variable HOOK_SECRET is empty: a webhook's signature needs a secret",
        "{problems:#?}"
    );
    assert_eq!(
        problems.len(),
        2,
        "the webhook's and the file's: {problems:#?}"
    );
}

#[test]
fn the_examples_defaults_are_warned_about_where_they_matter() {
    let warnings = |text: &str| {
        Config::from_toml(text, Vec::new())
            .expect("parse")
            .warnings()
    };
    assert!(
        warnings("").is_empty(),
        "the loopback default has nothing to fix"
    );
    let redis = "[store]\nengine = \"redis\"\nshards = 12\n";
    let one_server = warnings(&format!("{redis}url = \"redis://a:1\"\n"));
    assert_eq!(one_server.len(), 1, "{one_server:#?}");
    assert!(one_server[0].starts_with("store.shards is 12 with one Redis server"));
    assert!(warnings(&format!("{redis}urls = [\"redis://a:1\"]\n")).is_empty());

    let relay = "[[email.relays]]\nhost = \"relay.example\"\n";
    let bounce = warnings(relay);
    assert_eq!(bounce.len(), 1, "{bounce:#?}");
    assert!(bounce[0].starts_with("email.bounce_domain is the example `bounces.example.com`"));
    assert!(
        warnings(&format!(
            "[email]\nbounce_domain = \"b.telco.example\"\n{relay}"
        ))
        .is_empty()
    );

    let public = |base_url: &str| {
        warnings(&format!(
            "[listen]\ntracking = \"0.0.0.0:7801\"\n[tracking]\nbase_url = \"{base_url}\"\n"
        ))
    };
    for loopback in [
        "http://127.0.0.1:7801",
        "https://localhost/t",
        "http://[::1]:7801",
    ] {
        let w = public(loopback);
        assert_eq!(w.len(), 1, "{loopback}: {w:#?}");
        assert!(
            w[0].contains("is a loopback address while listen.tracking `0.0.0.0:7801` is public"),
            "{w:#?}"
        );
    }
    assert!(public("http://t.telco.example")[0].contains("plain http"));
    assert!(public("https://t.telco.example").is_empty());
}

#[test]
fn an_smsc_answer_must_come_within_half_the_lease() {
    let config = |lease: u64| {
        Config::from_toml(
            &format!("[dispatch]\nlease_secs = {lease}\n\n[[sms.smsc]]\nhost = \"127.0.0.1\"\nsystem_id = \"s\"\nresponse_timeout_secs = 10\n"),
            Vec::new(),
        )
        .expect("parse")
    };
    config(20).validate().expect("10 s of a 20 s lease");
    let error = config(19).validate().expect_err("too long").to_string();
    assert!(
        error.contains("sms.smsc[0].response_timeout_secs (10 s) must be at most half of dispatch.lease_secs (19 s)"),
        "{error}"
    );
}

#[test]
fn a_relay_send_must_end_within_half_the_lease() {
    let long = Config::from_toml(
        "[[email.relays]]\nhost = \"127.0.0.1\"\ndata_timeout_secs = 600\n",
        Vec::new(),
    )
    .expect("parse");
    let error = long.validate().expect_err("too long").to_string();
    assert!(
        error.contains("email.relays[0]: timeout_secs + data_timeout_secs (630 s) must be at most half of dispatch.lease_secs (300 s)"),
        "{error}"
    );
    let zero = Config::from_toml(
        "[[email.relays]]\nhost = \"127.0.0.1\"\ndata_timeout_secs = 0\n",
        Vec::new(),
    )
    .expect("parse");
    assert!(zero.validate().is_err());
    Config::from_toml("[[email.relays]]\nhost = \"127.0.0.1\"\n", Vec::new())
        .expect("parse")
        .validate()
        .expect("the defaults fit");
}

#[test]
fn the_redis_engine_wants_one_server_or_a_cluster_and_says_which_key_is_wrong() {
    let problems = |store: &str| -> Vec<String> {
        let c = Config::from_toml(&format!("[store]\nengine = \"redis\"\n{store}"), Vec::new())
            .expect("parse");
        match c.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(problems("url = \"redis://127.0.0.1:6379/0\"").is_empty());
    assert!(problems("urls = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]").is_empty());
    assert!(problems("")[0].starts_with("store.url: the redis engine needs"));
    assert!(problems("url = \"redis://a:1\"\nurls = [\"redis://b:2\"]")[0].contains("not both"));
    assert_eq!(
        problems("urls = [\"http://b:2\"]"),
        ["store.urls: `http://b:2` is not a `redis://` or `rediss://` URL"]
    );
    assert!(problems("url = \"redis://a:1\"\nnode = \" \"")[0].starts_with("store.node:"));
}

#[test]
fn retention_is_the_redis_engines_ninety_days_unless_set() {
    let store = |toml: &str| {
        Config::from_toml(&format!("[store]\n{toml}"), Vec::new())
            .expect("parse")
            .store
    };
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(store("engine = \"redis\"").retention(), Some(90 * day));
    assert_eq!(store("retention_days = 7").retention(), Some(7 * day));
    assert_eq!(
        store("retention_days = 0").retention(),
        None,
        "kept for ever"
    );
    let embedded = Config::from_toml("[store]\nretention_days = 7", Vec::new()).expect("parse");
    match embedded.validate() {
        Err(ConfigError::Invalid(problems)) => {
            assert!(
                problems[0].starts_with("store.retention_days:"),
                "{problems:?}"
            );
        }
        other => panic!("retention on the embedded engine: {other:?}"),
    }
}

#[test]
fn replicas_are_the_redis_engines_and_reach_its_options() {
    let config = Config::from_toml(
        "[store]\nengine = \"redis\"\nurl = \"redis://a:1\"\nreplicas = 1",
        Vec::new(),
    )
    .expect("parse");
    config.validate().expect("valid");
    let options = config.store.redis_options("n".into()).expect("options");
    assert_eq!(options.replicas, 1);
    let embedded =
        Config::from_toml("[store]\nreplicas = 1\nretention_days = 7", Vec::new()).expect("parse");
    match embedded.validate() {
        Err(ConfigError::Invalid(problems)) => {
            assert!(
                problems.iter().any(|p| p.starts_with("store.replicas:"))
                    && problems
                        .iter()
                        .any(|p| p.starts_with("store.retention_days:")),
                "both are named: {problems:?}"
            );
        }
        other => panic!("replicas on the embedded engine: {other:?}"),
    }
}

#[test]
fn shards_are_the_redis_engines_between_one_and_the_most_and_reach_its_options() {
    let validated = |toml: &str| {
        let config = Config::from_toml(&format!("[store]\n{toml}"), Vec::new()).expect("parse");
        config.validate().map(|()| config)
    };
    let config =
        validated("engine = \"redis\"\nurl = \"redis://a:1\"\nshards = 12").expect("valid");
    let options = config.store.redis_options("n".into()).expect("options");
    assert_eq!(options.shards, 12);
    let defaulted = validated("engine = \"redis\"\nurl = \"redis://a:1\"").expect("valid");
    assert_eq!(defaulted.store.shards, 1);
    for (toml, problem) in [
        (
            "engine = \"redis\"\nurl = \"redis://a:1\"\nshards = 0",
            "store.shards: 0 is not between 1 and 256",
        ),
        (
            "engine = \"redis\"\nurl = \"redis://a:1\"\nshards = 257",
            "store.shards: 257 is not between 1 and 256",
        ),
        (
            "shards = 3",
            "store.shards: shards are the redis engine's; the embedded engine keeps one store on disk",
        ),
    ] {
        match validated(toml) {
            Err(ConfigError::Invalid(problems)) => {
                assert_eq!(problems, [problem], "{toml}");
            }
            other => panic!("{toml}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn redis_certificates_want_tls_urls_both_halves_of_a_pair_and_readable_files() {
    let problems = |toml: &str| -> Vec<String> {
        match Config::from_toml(&format!("[store]\n{toml}"), Vec::new())
            .expect("parse")
            .validate()
        {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("{toml}: {other:?}"),
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").expect("write");
    let ca = format!("tls_ca_file = \"{}\"", ca.display());
    let redis = "engine = \"redis\"\nurl = \"redis://a:1\"";
    assert!(
        problems(&format!("{redis}\n{ca}"))[0]
            .starts_with("store.tls_ca_file: certificates are for a Redis reached over TLS"),
    );
    let tls = "engine = \"redis\"\nurl = \"rediss://a:1\"";
    assert!(
        problems(&format!(
            "{tls}\ntls_cert_file = \"{}\"",
            dir.path().join("c").display()
        ))
        .iter()
        .any(|p| p.contains("store.tls_cert_file and store.tls_key_file go together"))
    );
    assert!(
        problems(&format!("{tls}\ntls_ca_file = \"/nonexistent/ca.pem\""))
            .iter()
            .any(|p| p.starts_with("store.tls_ca_file: cannot read /nonexistent/ca.pem"))
    );
    assert!(
        problems(&ca)[0].starts_with("store.tls_ca_file: TLS certificates are the redis engine's")
    );

    let config = Config::from_toml(&format!("[store]\n{tls}\n{ca}"), Vec::new()).expect("parse");
    config.validate().expect("valid");
    let refused = config.store.redis_options("n".into()).err();
    assert_eq!(
        refused.as_deref(),
        Some("store.tls_ca_file: holds no PEM certificate")
    );
    let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("ca.pem"), pem).expect("write");
    let options = config.store.redis_options("n".into()).expect("read");
    assert!(options.certificates.ca.is_some() && options.certificates.client.is_none());
}

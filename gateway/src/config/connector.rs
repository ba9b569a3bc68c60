//! What `[[email.relays]]` and `[[sms.smsc]]` have in common: an address, and
//! a name (`host:port` unless given) unique in its list, since metrics and
//! logs tell connectors apart by name.

/// A connector's name: the configured one, or `host:port`.
pub(super) fn name(configured: Option<&str>, host: &str, port: u16) -> String {
    configured.map_or_else(|| format!("{host}:{port}"), str::to_owned)
}

/// Names of `section` that are empty or given to two connectors.
pub(super) fn name_problems<'a>(
    section: &str,
    names: impl Iterator<Item = (Option<&'a str>, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, (configured, name)) in names.enumerate() {
        if configured.is_some_and(|n| n.trim().is_empty()) {
            problems.push(format!("{section}[{i}].name: empty"));
        } else if !seen.insert(name.clone()) {
            problems.push(format!(
                "{section}[{i}].name: `{name}` names another one too"
            ));
        }
    }
    problems
}

/// The problems of the address of the connector `at`.
pub(super) fn address_problems(at: &str, host: &str, port: u16) -> Vec<String> {
    let mut problems = Vec::new();
    if host.is_empty() {
        problems.push(format!("{at}.host: empty"));
    }
    if port == 0 {
        problems.push(format!("{at}.port: must be > 0"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    #[test]
    fn connectors_are_named_host_and_port_unless_named_and_names_are_unique() {
        let text = r#"
            [[email.relays]]
            host = "10.0.0.1"
            [[email.relays]]
            name = "backup"
            host = "10.0.0.2"
            [[sms.smsc]]
            host = "smsc.example"
            system_id = "a"
            [[sms.smsc]]
            host = "smsc.example"
            system_id = "b"
            [[sms.smsc]]
            name = " "
            host = "other.example"
            system_id = "c"
        "#;
        let c = Config::from_toml(text, Vec::new()).expect("parse");
        assert_eq!(c.email.relays[0].name(), "10.0.0.1:25");
        assert_eq!(c.email.relays[1].name(), "backup");
        assert_eq!(c.sms.smsc[0].name(), "smsc.example:2775");
        let ConfigError::Invalid(problems) = c.validate().expect_err("invalid") else {
            panic!("not a validation error");
        };
        assert!(
            problems
                .contains(&"sms.smsc[1].name: `smsc.example:2775` names another one too".into()),
            "{problems:#?}"
        );
        assert!(
            problems.contains(&"sms.smsc[2].name: empty".into()),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
    }
}

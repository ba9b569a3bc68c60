//! Secrets the configuration points to (environment variables, password
//! files), checked before start so a missing one is reported with
//! every other problem instead of at the first connection.

use super::Config;

impl Config {
    /// One problem per secret that is named but not there; `is_set` says
    /// whether an environment variable is set.
    pub(super) fn secret_problems(&self, is_set: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        let mut env = |at: String, var: &str| {
            if !is_set(var) {
                problems.push(format!("{at}: environment variable {var} is not set"));
            }
        };
        for (i, relay) in self.email.relays.iter().enumerate() {
            if let Some(var) = &relay.password_env {
                env(format!("email.relays[{i}].password_env"), var);
            }
        }
        for (i, smsc) in self.sms.smsc.iter().enumerate() {
            if let Some(var) = &smsc.password_env {
                env(format!("sms.smsc[{i}].password_env"), var);
            }
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            env(format!("webhooks[{i}].secret_env"), &hook.secret_env);
        }
        for (at, cert, key) in [
            ("api", &self.api.tls_cert_file, &self.api.tls_key_file),
            (
                "tracking",
                &self.tracking.tls_cert_file,
                &self.tracking.tls_key_file,
            ),
        ] {
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    for (name, path) in [("tls_cert_file", cert), ("tls_key_file", key)] {
                        if let Err(e) = std::fs::File::open(path) {
                            problems
                                .push(format!("{at}.{name}: cannot read {}: {e}", path.display()));
                        }
                    }
                }
                (None, None) => {}
                _ => problems.push(format!(
                    "{at}: tls_cert_file and tls_key_file go together: set both or neither"
                )),
            }
        }
        for (i, smsc) in self.sms.smsc.iter().enumerate() {
            if let Some(path) = &smsc.password_file
                && let Err(e) = std::fs::File::open(path)
            {
                let at = format!("sms.smsc[{i}].password_file");
                problems.push(format!("{at}: cannot read {}: {e}", path.display()));
            }
        }
        problems
    }
}

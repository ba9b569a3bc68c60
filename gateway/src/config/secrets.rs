//! Secrets the configuration points to (environment variables, password
//! files), checked before start so a missing one is reported with
//! every other problem instead of at the first connection.

use super::Config;

impl Config {
    /// One problem per secret that is named but not there; `values` gives
    /// an environment variable's value.
    pub(super) fn secret_problems(
        &self,
        values: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let unset = |at: String, var: &str| {
            (values(var).is_none()).then(|| format!("{at}: environment variable {var} is not set"))
        };
        for (i, relay) in self.email.relays.iter().enumerate() {
            if let Some(var) = &relay.password_env {
                problems.extend(unset(format!("email.relays[{i}].password_env"), var));
            }
        }
        for (i, smsc) in self.sms.smsc.iter().enumerate() {
            if let Some(var) = &smsc.password_env {
                problems.extend(unset(format!("sms.smsc[{i}].password_env"), var));
            }
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            let at = format!("webhooks[{i}].secret_env");
            let var = &hook.secret_env;
            // An empty key signs what anyone can sign (an unset variable
            // put into a compose file is empty, not absent).
            problems.extend(match values(var).map(std::ffi::OsString::into_string) {
                None => unset(at, var),
                Some(Ok(secret)) if secret.is_empty() => Some(format!(
                    "{at}: environment variable {var} is empty: a webhook's signature needs a secret"
                )),
                Some(Ok(_)) => None,
                Some(Err(_)) => Some(format!("{at}: environment variable {var} is not valid UTF-8")),
            });
        }
        for (at, cert, key) in [
            ("api.tls", &self.api.tls_cert_file, &self.api.tls_key_file),
            (
                "tracking.tls",
                &self.tracking.tls_cert_file,
                &self.tracking.tls_key_file,
            ),
            (
                "email.bounce_tls",
                &self.email.bounce_tls_cert_file,
                &self.email.bounce_tls_key_file,
            ),
            (
                "store.tls",
                &self.store.tls_cert_file,
                &self.store.tls_key_file,
            ),
        ] {
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    for (name, path) in [("cert_file", cert), ("key_file", key)] {
                        if let Err(e) = std::fs::File::open(path) {
                            problems
                                .push(format!("{at}_{name}: cannot read {}: {e}", path.display()));
                        }
                    }
                }
                (None, None) => {}
                _ => problems.push(format!(
                    "{at}_cert_file and {at}_key_file go together: set both or neither"
                )),
            }
        }
        if let Some(path) = &self.store.tls_ca_file
            && let Err(e) = std::fs::File::open(path)
        {
            problems.push(format!(
                "store.tls_ca_file: cannot read {}: {e}",
                path.display()
            ));
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

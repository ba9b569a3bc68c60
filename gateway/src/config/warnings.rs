//! Settings that are valid but almost certainly not what the operator
//! wants in production: the example's defaults left in place. `check-config`
//! prints them and `serve` logs them once at start; neither refuses.

use std::net::{IpAddr, SocketAddr};

use super::Config;

/// The example bounce domain of the defaults and the README.
const EXAMPLE_BOUNCE_DOMAIN: &str = "bounces.example.com";

impl Config {
    /// One line per suspicious setting, naming its key and what to do.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.email.relays.is_empty() && self.email.bounce_domain == EXAMPLE_BOUNCE_DOMAIN {
            warnings.push(format!(
                "email.bounce_domain is the example `{EXAMPLE_BOUNCE_DOMAIN}`: returned mail goes to a domain that is not yours; set it to a domain whose MX reaches listen.bounce"
            ));
        }
        let public_tracking = self
            .listen
            .tracking
            .parse::<SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback());
        if public_tracking {
            let base_url = &self.tracking.base_url;
            if base_url_is_loopback(base_url) {
                warnings.push(format!(
                    "tracking.base_url `{base_url}` is a loopback address while listen.tracking `{}` is public: recipients' clicks, opens and unsubscribes cannot reach it; set tracking.base_url to the listener's public URL",
                    self.listen.tracking
                ));
            } else if base_url.starts_with("http://") {
                warnings.push(format!(
                    "tracking.base_url `{base_url}` is plain http: mail clients' one-click unsubscribe (RFC 8058) wants https"
                ));
            }
        }
        let store = &self.store;
        if store.engine == "redis" && store.shards > 1 && store.urls.is_empty() {
            warnings.push(format!(
                "store.shards is {} with one Redis server (store.url): shards spread campaigns over a Redis Cluster's masters; on one server they only add requests (a batch of several shards' messages is one write per shard)",
                store.shards
            ));
        }
        warnings
    }
}

fn base_url_is_loopback(base_url: &str) -> bool {
    let Some(host) = base_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

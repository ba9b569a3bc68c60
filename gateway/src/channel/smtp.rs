//! The SMTP channel: a pool of reused connections to each configured relay,
//! STARTTLS when the relay offers it (rustls), optional AUTH. A relay's reply
//! becomes a [`Delivery`]: 2xx accepted, 5xx permanent, 4xx and lost
//! connections transient.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mail_send::{
    Credentials, SmtpClient,
    smtp::{AssertReply, message::Parameters},
};
use tokio::{net::TcpStream, sync::Semaphore};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::Delivery;
use crate::config::{Relay as RelayConfig, TlsMode};

/// `EXT_START_TLS` of smtp-proto: the relay's EHLO offered STARTTLS.
const STARTTLS: u32 = smtp_proto::EXT_START_TLS;

enum Connection {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// Runs the same body on either kind of connection.
macro_rules! on_client {
    ($conn:expr, $client:ident => $body:expr) => {
        match $conn {
            Connection::Plain($client) => $body,
            Connection::Tls($client) => $body,
        }
    };
}

struct Relay {
    config: RelayConfig,
    name: String,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
    tls: Option<TlsConnector>,
    credentials: Option<Credentials<String>>,
}

/// Every configured relay, used in turn.
pub struct RelayPool {
    relays: Vec<Arc<Relay>>,
    next: AtomicUsize,
    helo: String,
}

impl std::fmt::Debug for RelayPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.relays.iter().map(|r| &r.name))
            .finish()
    }
}

impl RelayPool {
    /// Prepares the pool; connections are opened on first use.
    pub fn new(configs: &[RelayConfig], helo: &str) -> Result<Self, String> {
        let mut relays = Vec::with_capacity(configs.len());
        for config in configs {
            let tls = match config.tls {
                TlsMode::None => None,
                TlsMode::Starttls | TlsMode::Tls => Some(
                    mail_send::smtp::tls::build_tls_connector(config.tls_insecure)?,
                ),
            };
            let credentials = match (&config.username, &config.password_env) {
                (Some(user), Some(env)) => {
                    let secret = std::env::var(env).map_err(|_| {
                        format!(
                            "relay {}: environment variable {env} is not set",
                            config.host
                        )
                    })?;
                    Some(Credentials::new(user.clone(), secret))
                }
                _ => None,
            };
            relays.push(Arc::new(Relay {
                name: format!("{}:{}", config.host, config.port),
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(config.connections),
                tls,
                credentials,
                config: config.clone(),
            }));
        }
        Ok(Self {
            relays,
            next: AtomicUsize::new(0),
            helo: helo.to_owned(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Sends one message to one recipient with envelope sender `from`.
    pub async fn send(&self, from: &str, to: &str, message: &[u8]) -> Delivery {
        let Some(relay) = self.pick() else {
            return Delivery::Transient {
                reply: "no relay configured".into(),
                retry_after: None,
            };
        };
        let Ok(_slot) = relay.slots.acquire().await else {
            return Delivery::Transient {
                reply: "relay pool closed".into(),
                retry_after: None,
            };
        };
        // A reused connection the relay has since closed fails on its first
        // command; that is not the message's fault, so try a fresh one once.
        if let Some(conn) = relay.take_idle() {
            match transaction(conn, from, to, message).await {
                Outcome::Replied(delivery, conn) => {
                    relay.put_idle(conn);
                    return delivery;
                }
                Outcome::Lost(_) => {}
            }
        }
        let conn = match relay.connect(&self.helo).await {
            Ok(conn) => conn,
            Err(e) => {
                return Delivery::Transient {
                    reply: format!("connecting to {}: {e}", relay.name),
                    retry_after: None,
                };
            }
        };
        match transaction(conn, from, to, message).await {
            Outcome::Replied(delivery, conn) => {
                relay.put_idle(conn);
                delivery
            }
            Outcome::Lost(reason) => Delivery::Transient {
                reply: format!("{}: {reason}", relay.name),
                retry_after: None,
            },
        }
    }

    /// Says QUIT on every idle connection.
    pub async fn close(&self) {
        for relay in &self.relays {
            let idle = std::mem::take(&mut *relay.lock_idle());
            for conn in idle {
                let _ = match conn {
                    Connection::Plain(c) => c.quit().await,
                    Connection::Tls(c) => c.quit().await,
                };
            }
        }
    }

    fn pick(&self) -> Option<&Arc<Relay>> {
        if self.relays.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.relays.get(n % self.relays.len())
    }
}

enum Outcome {
    /// The relay answered; the connection, if still in a clean state.
    Replied(Delivery, Option<Connection>),
    /// The connection broke before an answer.
    Lost(String),
}

async fn transaction(mut conn: Connection, from: &str, to: &str, message: &[u8]) -> Outcome {
    let params = Parameters::default();
    let result = on_client!(&mut conn, c => async {
        c.mail_from(from, &params).await?;
        c.rcpt_to(to, &params).await?;
        c.data(message).await
    }.await);
    match result {
        Ok(reply) => {
            let delivery = Delivery::Accepted {
                reply: reply_text(reply.code, reply.esc, &reply.message),
            };
            Outcome::Replied(delivery, Some(conn))
        }
        Err(mail_send::Error::UnexpectedReply(reply)) => {
            let text = reply_text(reply.code, reply.esc, &reply.message);
            let delivery = if (500..600).contains(&reply.code) {
                Delivery::Permanent {
                    reply: text,
                    code: Some(reply.code),
                }
            } else {
                Delivery::Transient {
                    reply: text,
                    retry_after: None,
                }
            };
            // The transaction is half done: reset it before reuse.
            let reusable = on_client!(&mut conn, c => c.rset().await).is_ok();
            Outcome::Replied(delivery, reusable.then_some(conn))
        }
        Err(e) => Outcome::Lost(e.to_string()),
    }
}

fn reply_text(code: u16, esc: [u8; 3], message: &str) -> String {
    if esc[0] == 0 {
        format!("{code} {message}")
    } else {
        format!("{code} {}.{}.{} {message}", esc[0], esc[1], esc[2])
    }
}

impl Relay {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_idle(&self) -> Option<Connection> {
        self.lock_idle().pop()
    }

    fn put_idle(&self, conn: Option<Connection>) {
        if let Some(conn) = conn {
            self.lock_idle().push(conn);
        }
    }

    /// Opens a session ready for MAIL FROM: greeting, EHLO, TLS as
    /// configured (STARTTLS only when offered), AUTH if configured.
    async fn connect(&self, helo: &str) -> mail_send::Result<Connection> {
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let addr = tokio::net::lookup_host((self.config.host.as_str(), self.config.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "host has no address")
            })?;
        let mut plain = SmtpClient::connect(addr, timeout).await?;
        let host = self.config.host.as_str();
        let (mut conn, caps) = match (&self.tls, self.config.tls) {
            (Some(tls), TlsMode::Tls) => {
                let mut c = plain.into_tls(tls, host).await?;
                c.read().await?.assert_positive_completion()?;
                let caps = c.ehlo(helo).await?;
                (Connection::Tls(Box::new(c)), caps)
            }
            (tls, _) => {
                plain.read().await?.assert_positive_completion()?;
                let caps = plain.ehlo(helo).await?;
                match tls {
                    Some(tls) if caps.has_capability(STARTTLS) => {
                        let mut c = plain.start_tls(tls, host).await?;
                        let caps = c.ehlo(helo).await?;
                        (Connection::Tls(Box::new(c)), caps)
                    }
                    _ => (Connection::Plain(plain), caps),
                }
            }
        };
        if let Some(credentials) = &self.credentials {
            on_client!(&mut conn, c => c.authenticate(credentials, &caps).await.map(drop))?;
        }
        Ok(conn)
    }
}

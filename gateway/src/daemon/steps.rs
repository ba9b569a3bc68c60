//! The steps of the daemon's start, each named for what it sets up.

use std::{net::SocketAddr, sync::Arc};

use admin_api::{ApiConfig, Tokens};
use store::{Store, embedded::Embedded, redis::Redis};
use tokio::signal::unix::Signal;
use tokio::{net::TcpListener, sync::Notify};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    RunError, api_server,
    server_tls::{self, ReloadingCert},
};
use crate::{
    backend::GatewayBackend,
    channel::{Deps, Registry},
    config::Config,
    dispatch::Dispatcher,
    engagements::EngagementLog,
    links::Links,
    metrics::Metrics,
    policy::Policy,
    progress::Progress,
    recorded::Recorded,
    returns::{Returns, listener, maildir::Maildir},
    tracking,
    verp::ReturnPaths,
    webhook::{self, WebhookSender},
};

/// Meta key of the generated Return-Path secret when none is configured.
const RETURN_PATH_SECRET: &str = "secret:return-path";
/// Meta key of the generated tracking key when none is configured.
const TRACKING_SECRET: &str = "secret:tracking";

/// The store `[store]` names: the embedded engine in its data directory,
/// or the Redis that the nodes share.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, RunError> {
    let store = &config.store;
    if store.engine == "redis" {
        let options = store
            .redis_options(store.node_name())
            .map_err(RunError::Setup)?;
        let key = options.servers.key();
        let redis = Arc::new(Redis::open(options).await?);
        for warning in redis.durability_warnings().await {
            tracing::warn!("{key}: {warning}");
        }
        redis.complete_publishes_while_open();
        // The facts a webhook has not delivered stay past the retention.
        let readers = (config.webhooks.iter().enumerate())
            .map(|(index, hook)| webhook::cursor_key(index, &hook.url))
            .collect();
        redis.sweep_while_open(store.retention(), readers);
        return Ok(redis);
    }
    let path = store.path.clone();
    let options = store::embedded::Options {
        min_free_bytes: store.min_free_bytes,
        ..Default::default()
    };
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || Embedded::open_with(&path, options))
            .await
            .map_err(|e| RunError::Setup(e.to_string()))??,
    ))
}

/// What every part of the daemon shares: the store, the secrets' products,
/// the metrics, the channels, load control and the returns intake.
pub(super) struct Core {
    store: Arc<dyn Store>,
    keys: Arc<clicktrack::Keyring>,
    links: Arc<Links>,
    metrics: Arc<Metrics>,
    channels: Registry,
    policy: Arc<Policy>,
    returns: Arc<Returns>,
    /// Woken when a campaign starts or gets participants.
    wake: Arc<Notify>,
    /// Running campaigns' pace, for their ETA.
    progress: Arc<Progress>,
    /// How many of the dispatcher's outcomes are durable.
    recorded: Recorded,
}

impl Core {
    /// Opens the store and starts the channels and load control on it.
    pub(super) async fn open(config: &Config) -> Result<Self, RunError> {
        let store = open_store(config).await?;
        let secret = return_path_secret(config, store.as_ref()).await?;
        let return_paths = ReturnPaths::new(&secret, &config.email.bounce_domain);
        let keys = Arc::new(tracking_keys(config, store.as_ref()).await?);
        let links = Arc::new(
            Links::new(keys.clone(), &config.tracking.base_url)
                .map_err(|e| RunError::Setup(format!("tracking.base_url: {e}")))?,
        );
        let mut metrics = Metrics::default();
        metrics.watch_store(store.clone());
        let metrics = Arc::new(metrics);
        let recorded = Recorded::default();
        let channels = Registry::start(&Deps {
            config,
            store: store.clone(),
            metrics: metrics.clone(),
            links: links.clone(),
            return_paths: return_paths.clone(),
            recorded: recorded.clone(),
        })
        .map_err(|e| RunError::Setup(e.to_string()))?;
        let policy = Arc::new(
            Policy::load(store.clone(), channels.kinds(), domain::now_ms())
                .await
                .map_err(|e| RunError::Setup(format!("load control: {e}")))?,
        );
        let returns = Arc::new(Returns::new(
            store.clone(),
            return_paths,
            config.email.retry(),
            metrics.clone(),
        ));
        Ok(Self {
            store,
            keys,
            links,
            metrics,
            channels,
            policy,
            returns,
            wake: Arc::new(Notify::new()),
            progress: Arc::default(),
            recorded,
        })
    }
}

/// The CRM API over the core, with its tokens.
pub(super) fn api_router(config: &Config, core: &Core) -> Result<axum::Router, RunError> {
    let tokens = Tokens::parse(&config.api.tokens).map_err(|e| RunError::Setup(e.to_string()))?;
    if tokens.is_open() {
        tracing::warn!(
            "no API tokens set (SLUICE_API_TOKENS): the API is open to anyone on loopback"
        );
    }
    let backend = Arc::new(GatewayBackend {
        store: core.store.clone(),
        returns: core.returns.clone(),
        policy: core.policy.clone(),
        channels: core.channels.clone(),
        metrics: core.metrics.clone(),
        wake: core.wake.clone(),
        progress: core.progress.clone(),
        links: core.links.clone(),
    });
    Ok(admin_api::router(
        backend,
        ApiConfig {
            tokens,
            max_body_bytes: config.api.max_body_bytes,
            max_body_memory: config.api.max_body_memory,
        },
    ))
}

/// The three listeners, bound, and their addresses.
pub(super) struct Listeners {
    pub(super) api: TcpListener,
    pub(super) tracking: TcpListener,
    pub(super) bounce: TcpListener,
    pub(super) addrs: Addrs,
}

pub(super) struct Addrs {
    pub(super) api: SocketAddr,
    pub(super) tracking: SocketAddr,
    pub(super) bounce: SocketAddr,
}

impl Listeners {
    pub(super) async fn bind(config: &Config) -> Result<Self, RunError> {
        let api = bind("listen.api", &config.listen.api).await?;
        let tracking = bind("listen.tracking", &config.listen.tracking).await?;
        let bounce = bind("listen.bounce", &config.listen.bounce).await?;
        let addr = |l: &TcpListener| l.local_addr().map_err(|e| RunError::Setup(e.to_string()));
        let addrs = Addrs {
            api: addr(&api)?,
            tracking: addr(&tracking)?,
            bounce: addr(&bounce)?,
        };
        Ok(Self {
            api,
            tracking,
            bounce,
            addrs,
        })
    }
}

async fn bind(key: &'static str, addr: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind {
            key,
            addr: addr.to_owned(),
            source,
        })
}

/// One sender per configured webhook, each with its secret.
pub(super) fn webhook_senders(
    config: &Config,
    core: &Core,
) -> Result<Vec<WebhookSender>, RunError> {
    config
        .webhooks
        .iter()
        .enumerate()
        .map(|(index, hook)| {
            let secret = std::env::var(&hook.secret_env).map_err(|_| {
                RunError::Setup(format!("webhooks[{index}]: {} is not set", hook.secret_env))
            })?;
            let client = webhook::client(hook)
                .map_err(|e| RunError::Setup(format!("webhooks[{index}]: {e}")))?;
            Ok(WebhookSender {
                index,
                config: hook.clone(),
                client,
                secret: secret.into_bytes(),
                store: core.store.clone(),
                metrics: core.metrics.clone(),
                retry: webhook::Retry::default(),
            })
        })
        .collect()
}

pub(super) fn spawn_dispatcher(
    config: &Config,
    core: &Core,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let dispatcher = Arc::new(Dispatcher {
        policy: core.policy.clone(),
        store: core.store.clone(),
        channels: core.channels.clone(),
        config: config.dispatch.clone(),
        metrics: core.metrics.clone(),
        wake: core.wake.clone(),
        recorded: core.recorded.clone(),
    });
    tasks.spawn(dispatcher.run(shutdown.clone()));
    let progress = core.progress.clone();
    tasks.spawn(progress.sample(core.store.clone(), shutdown.clone()));
}

/// Returned mail: the SMTP listener and, if configured, the maildir watcher.
pub(super) fn spawn_returns(
    config: &Config,
    core: &Core,
    bounce: TcpListener,
    tls: Option<TlsAcceptor>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if let Some(maildir) = &config.email.bounce_maildir {
        let watcher = Maildir::new(maildir, core.returns.clone());
        tasks.spawn(watcher.watch(shutdown.clone()));
    }
    let intake = listener::Intake::new(tls, listener::LINE_TIMEOUT);
    tasks.spawn(listener::serve(
        bounce,
        core.returns.clone(),
        intake,
        shutdown.clone(),
    ));
}

/// The certificates of the listeners that speak TLS, read before any task
/// starts so that one that cannot be read stops the start.
pub(super) struct ListenerTls {
    api: Option<Arc<ReloadingCert>>,
    tracking: Option<Arc<ReloadingCert>>,
    bounce: Option<Arc<ReloadingCert>>,
}

impl ListenerTls {
    pub(super) fn load(config: &Config) -> Result<Self, RunError> {
        let load = |listener,
                    cert: &Option<std::path::PathBuf>,
                    key: &Option<std::path::PathBuf>| match (cert, key) {
            (Some(cert), Some(key)) => ReloadingCert::load(listener, cert, key)
                .map(Some)
                .map_err(RunError::Setup),
            _ => Ok(None),
        };
        Ok(Self {
            api: load(
                "api.tls",
                &config.api.tls_cert_file,
                &config.api.tls_key_file,
            )?,
            tracking: load(
                "tracking.tls",
                &config.tracking.tls_cert_file,
                &config.tracking.tls_key_file,
            )?,
            bounce: load(
                "email.bounce_tls",
                &config.email.bounce_tls_cert_file,
                &config.email.bounce_tls_key_file,
            )?,
        })
    }

    pub(super) fn api(&self) -> Result<Option<TlsAcceptor>, RunError> {
        acceptor(self.api.as_ref())
    }

    pub(super) fn tracking(&self) -> Result<Option<TlsAcceptor>, RunError> {
        acceptor(self.tracking.as_ref())
    }

    pub(super) fn bounce(&self) -> Result<Option<TlsAcceptor>, RunError> {
        acceptor(self.bounce.as_ref())
    }

    /// Reads the certificates again on each of `hangups` (SIGHUP).
    pub(super) fn reload_on_hangup(
        self,
        hangups: Signal,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let certs: Vec<_> = [self.api, self.tracking, self.bounce]
            .into_iter()
            .flatten()
            .collect();
        tasks.spawn(server_tls::reload_on_hangup(
            certs,
            hangups,
            shutdown.clone(),
        ));
    }
}

fn acceptor(cert: Option<&Arc<ReloadingCert>>) -> Result<Option<TlsAcceptor>, RunError> {
    cert.map(|c| c.acceptor().map_err(RunError::Setup))
        .transpose()
}

/// The tracking listener on a thread of its own, and its event writer.
pub(super) fn spawn_tracking(
    config: &Config,
    core: &Core,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    let engagements = EngagementLog::new(core.store.clone(), core.metrics.clone());
    let (sink, events) = tracking::Sink::new(
        core.store.clone(),
        engagements.clone(),
        core.links.clone(),
        core.channels.clone(),
    );
    tasks.spawn(tracking::write_events(events, engagements));
    tasks.spawn(core.links.clone().forget_deleted(
        core.store.clone(),
        tracking::FORGET_DELETED_EVERY,
        shutdown.clone(),
    ));
    let handlers = clicktrack::Tracking::new(Arc::new(sink), core.keys.clone());
    let served = clicktrack::serve_on_thread(
        listener,
        handlers,
        config.tracking.max_connections,
        tls,
        shutdown.clone().cancelled_owned(),
    )
    .map_err(|e| RunError::Setup(e.to_string()))?;
    tasks.spawn(async move {
        if let Err(e) = served.await {
            tracing::error!(error = %e, "tracking listener failed");
        }
    });
    Ok(())
}

pub(super) fn spawn_api(
    router: axum::Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    tasks.spawn(api_server::serve(
        listener,
        router,
        api_server::HEADER_READ_TIMEOUT,
        tls,
        shutdown.clone(),
    ));
}

/// The configured tracking keys, or a key generated once and kept in the
/// store so links already sent keep working across restarts.
async fn tracking_keys(
    config: &Config,
    store: &dyn Store,
) -> Result<clicktrack::Keyring, RunError> {
    let setup =
        |e: clicktrack::Error| RunError::Setup(format!("{}: {e}", config.tracking.keys_env));
    if let Ok(spec) = std::env::var(&config.tracking.keys_env)
        && !spec.is_empty()
    {
        return clicktrack::Keyring::from_spec(&spec).map_err(setup);
    }
    let secret = stored_secret(store, TRACKING_SECRET).await?;
    clicktrack::Keyring::from_secret(1, &secret).map_err(setup)
}

/// The configured secret, or one generated once and kept in the store so
/// Return-Path tokens stay valid across restarts.
async fn return_path_secret(config: &Config, store: &dyn Store) -> Result<Vec<u8>, RunError> {
    if let Ok(secret) = std::env::var(&config.email.token_secret_env)
        && !secret.is_empty()
    {
        return Ok(secret.into_bytes());
    }
    Ok(stored_secret(store, RETURN_PATH_SECRET).await?)
}

/// The secret kept under `key`, made now if there is none. Nodes starting
/// together on one store may all find none: only the first one's is
/// written, and the others take it, so that every node signs alike.
async fn stored_secret(store: &dyn Store, key: &str) -> Result<Vec<u8>, store::StoreError> {
    if let Some(secret) = store.meta(key).await? {
        return Ok(secret);
    }
    let made: [u8; 32] = rand::random();
    if store.put_meta_if(key, None, made.to_vec()).await? {
        return Ok(made.to_vec());
    }
    (store.meta(key).await?).ok_or_else(|| store::StoreError::Corrupt {
        what: "a secret",
        detail: format!("{key} written by another node, then gone"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nodes_starting_together_take_the_same_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        let (a, b) = tokio::join!(
            stored_secret(&store, TRACKING_SECRET),
            stored_secret(&store, TRACKING_SECRET)
        );
        let (a, b) = (a.expect("a secret"), b.expect("a secret"));
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        let again = stored_secret(&store, TRACKING_SECRET).await.expect("kept");
        assert_eq!(again, a);
    }
}

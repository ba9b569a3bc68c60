//! Start-up and shutdown: open the store, build the channels, bind the
//! listeners, run the dispatcher and webhooks until the shutdown signal, then
//! stop accepting, let sends in flight finish (bounded), and close upstreams.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use admin_api::{ApiConfig, Tokens};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    backend::GatewayBackend,
    channel::{self, Registry},
    config::Config,
    dispatch::Dispatcher,
    metrics::Metrics,
    policy::Policy,
    returns::Returns,
    tracking::{self, Links},
    verp::ReturnPaths,
    webhook::WebhookSender,
};
use store::{Store, StoreError, embedded::Embedded};

/// How long sends in flight may take to finish after the shutdown signal.
const GRACE: Duration = Duration::from_secs(20);
/// Meta key of the generated Return-Path secret when none is configured.
const RETURN_PATH_SECRET: &str = "secret:return-path";
/// Meta key of the generated tracking key when none is configured.
const TRACKING_SECRET: &str = "secret:tracking";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// A started daemon: its bound addresses and its tasks.
pub struct Running {
    pub api: SocketAddr,
    pub tracking: SocketAddr,
    pub bounce: SocketAddr,
    tasks: TaskTracker,
}

impl Running {
    /// Waits for the tasks after `shutdown` was cancelled, at most the grace period.
    pub async fn stopped(self) {
        if tokio::time::timeout(GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "grace period over; unsettled messages will be sent again after restart"
            );
        }
    }
}

/// Files the daemon needs besides tracking connections: the store's table
/// files (fjall keeps up to 900 open), journals, relay and SMSC
/// connections, API clients.
const FILES_BESIDES_TRACKING: u64 = 1024;

/// Raises the soft open-file limit to the hard one (as Go programs do at
/// start: the soft default of 1024 is a relic of `select`), and warns when
/// even that cannot hold `tracking.max_connections` connections and what the
/// rest of the daemon needs: a connection flood would then starve the store
/// and the upstreams after all.
fn raise_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if max_connections as u64 + FILES_BESIDES_TRACKING > limit => {
            tracing::warn!(
                limit,
                max_connections,
                "the open-file limit (ulimit -n) is below tracking.max_connections plus {FILES_BESIDES_TRACKING}: raise its hard limit or lower tracking.max_connections"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read or raise the open-file limit"),
    }
}

/// Serves until `shutdown` is cancelled, then shuts down gracefully.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let running = start(config, shutdown.clone()).await?;
    announce(&running);
    tracing::info!(api = %running.api, tracking = %running.tracking, bounce = %running.bounce, "sluice is serving");
    shutdown.cancelled().await;
    tracing::info!("shutting down: no new claims, finishing sends in flight");
    running.stopped().await;
    Ok(())
}

/// Opens the store, binds the listeners and starts every task.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, RunError> {
    config.validate()?;
    // Before the store opens its files.
    raise_file_limit(config.tracking.max_connections);
    let path = config.store.path.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || Embedded::open(&path))
            .await
            .map_err(|e| RunError::Setup(e.to_string()))??,
    );
    let secret = return_path_secret(&config, store.as_ref()).await?;
    let keys = Arc::new(tracking_keys(&config, store.as_ref()).await?);
    let links =
        Arc::new(Links::new(keys.clone(), &config.tracking.base_url).map_err(RunError::Setup)?);
    let metrics = Arc::new(Metrics::default());
    let channels = Registry::start(&channel::Deps {
        config: &config,
        store: store.clone(),
        metrics: metrics.clone(),
        links: links.clone(),
        return_paths: ReturnPaths::new(&secret, &config.email.bounce_domain),
    })
    .map_err(RunError::Setup)?;
    let policy = Arc::new(
        Policy::load(store.clone(), channels.kinds(), domain::now_ms())
            .await
            .map_err(|e| RunError::Setup(format!("load control: {e}")))?,
    );
    let wake = Arc::new(Notify::new());

    let tokens = Tokens::parse(&config.api.tokens).map_err(RunError::Setup)?;
    if tokens.is_open() {
        tracing::warn!(
            "no API tokens set (SLUICE_API_TOKENS): the API is open to anyone on loopback"
        );
    }
    let returns = Arc::new(Returns::new(
        store.clone(),
        ReturnPaths::new(&secret, &config.email.bounce_domain),
        config.email.retry(),
        metrics.clone(),
    ));
    let backend = Arc::new(GatewayBackend {
        store: store.clone(),
        returns: returns.clone(),
        policy: policy.clone(),
        channels: channels.clone(),
        sms_max_parts: config.sms.max_parts,
        links: links.clone(),
        metrics: metrics.clone(),
        wake: wake.clone(),
    });
    let router = admin_api::router(
        backend,
        ApiConfig {
            tokens,
            max_body_bytes: config.api.max_body_bytes,
        },
    );
    let api = bind("api", &config.listen.api).await?;
    let api_addr = api
        .local_addr()
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let tracking_listener = bind("tracking", &config.listen.tracking).await?;
    let tracking_addr = tracking_listener
        .local_addr()
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let bounce_listener = bind("bounce", &config.listen.bounce).await?;
    let bounce_addr = bounce_listener
        .local_addr()
        .map_err(|e| RunError::Setup(e.to_string()))?;

    let tasks = TaskTracker::new();
    let dispatcher = Arc::new(Dispatcher {
        policy,
        store: store.clone(),
        channels,
        config: config.dispatch.clone(),
        metrics: metrics.clone(),
        wake,
    });
    tasks.spawn(dispatcher.run(shutdown.clone()));
    if let Some(maildir) = &config.email.bounce_maildir {
        let watcher = crate::returns::maildir::Maildir::new(maildir, returns.clone());
        tasks.spawn(watcher.watch(shutdown.clone()));
    }
    tasks.spawn(crate::returns::listener::serve(
        bounce_listener,
        returns,
        shutdown.clone(),
    ));
    let (sink, events) = tracking::Sink::new(store.clone(), links);
    tasks.spawn(tracking::write_events(events, store.clone()));
    let handlers = clicktrack::Tracking::new(Arc::new(sink), keys);
    for (index, hook) in config.webhooks.iter().enumerate() {
        let secret = std::env::var(&hook.secret_env).map_err(|_| {
            RunError::Setup(format!("webhooks[{index}]: {} is not set", hook.secret_env))
        })?;
        let client = crate::webhook::client(hook)
            .map_err(|e| RunError::Setup(format!("webhooks[{index}]: {e}")))?;
        let sender = WebhookSender {
            index,
            config: hook.clone(),
            client,
            secret: secret.into_bytes(),
            store: store.clone(),
            metrics: metrics.clone(),
        };
        tasks.spawn(sender.run(shutdown.clone()));
    }
    // Redirects get a thread and runtime of their own (see `serve_on_thread`),
    // started after the last step that can fail so that no thread outlives a
    // failed start.
    let tracking_served = clicktrack::serve_on_thread(
        tracking_listener,
        handlers,
        config.tracking.max_connections,
        shutdown.clone().cancelled_owned(),
    )
    .map_err(|e| RunError::Setup(e.to_string()))?;
    tasks.spawn(async move {
        if let Err(e) = tracking_served.await {
            tracing::error!(error = %e, "tracking listener failed");
        }
    });
    let stop_api = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(api, router)
            .with_graceful_shutdown(stop_api.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API listener failed");
        }
    });
    tasks.close();
    Ok(Running {
        api: api_addr,
        tracking: tracking_addr,
        bounce: bounce_addr,
        tasks,
    })
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind {
            what,
            addr: addr.to_owned(),
            source,
        })
}

/// The one line tests and scripts read to find the ports.
fn announce(running: &Running) {
    println!(
        "listening api={} tracking={} bounce={}",
        running.api, running.tracking, running.bounce
    );
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
    let secret = match store.meta(TRACKING_SECRET).await? {
        Some(secret) => secret,
        None => {
            let secret: [u8; 32] = rand::random();
            store.put_meta(TRACKING_SECRET, secret.to_vec()).await?;
            secret.to_vec()
        }
    };
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
    if let Some(secret) = store.meta(RETURN_PATH_SECRET).await? {
        return Ok(secret);
    }
    let secret: [u8; 32] = rand::random();
    store.put_meta(RETURN_PATH_SECRET, secret.to_vec()).await?;
    Ok(secret.to_vec())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        use rlimit::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::NOFILE).expect("limit");
        // Start from a low soft limit, as systemd gives services (1024).
        setrlimit(Resource::NOFILE, hard.min(512), hard).expect("lower the soft limit");
        super::raise_file_limit(1);
        assert_eq!(getrlimit(Resource::NOFILE).expect("limit"), (hard, hard));
    }
}

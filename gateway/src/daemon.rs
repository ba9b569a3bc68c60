//! Start-up and shutdown: open the store, build the channels, bind the
//! listeners, run the dispatcher and webhooks until the shutdown signal, then
//! stop accepting, let sends in flight finish (bounded), and close upstreams.

mod api_server;
mod server_tls;
mod steps;

use std::{net::SocketAddr, time::Duration};

use store::StoreError;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::steps::{
    Core, ListenerTls, Listeners, api_router, spawn_api, spawn_dispatcher, spawn_returns,
    spawn_tracking, webhook_senders,
};
use crate::config::Config;

/// How long sends in flight may take to finish after the shutdown signal.
const GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{key}: cannot listen on {addr}: {}", bind_advice(source, key))]
    Bind {
        /// The configuration key of the listener, e.g. `listen.bounce`.
        key: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// Why a listener could not bind, and what to change.
fn bind_advice(source: &std::io::Error, key: &str) -> String {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "the address is in use by another program (another sluice?); set {key} to a free address"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied (ports below 1024 need privileges); set {key} to a port above 1023"
        ),
        _ => source.to_string(),
    }
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

/// Opens the store, binds the listeners and starts every task, in this
/// order: whatever can fail does before any task runs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, RunError> {
    config.validate()?;
    let hangups =
        server_tls::hangups().map_err(|e| RunError::Setup(format!("listening for SIGHUP: {e}")))?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    // Before the store opens its files.
    raise_file_limit(config.tracking.max_connections);
    let core = Core::open(&config).await?;
    let api = api_router(&config, &core)?;
    let listeners = Listeners::bind(&config).await?;
    let tls = ListenerTls::load(&config)?;
    let webhooks = webhook_senders(&config, &core)?;
    let tasks = TaskTracker::new();
    spawn_dispatcher(&config, &core, &tasks, &shutdown);
    spawn_returns(
        &config,
        &core,
        listeners.bounce,
        tls.bounce()?,
        &tasks,
        &shutdown,
    );
    for sender in webhooks {
        tasks.spawn(sender.run(shutdown.clone()));
    }
    // Redirects get a thread and runtime of their own (see `serve_on_thread`),
    // started after the last step that can fail so that no thread outlives a
    // failed start.
    spawn_tracking(
        &config,
        &core,
        listeners.tracking,
        tls.tracking()?,
        &tasks,
        &shutdown,
    )?;
    spawn_api(api, listeners.api, tls.api()?, &tasks, &shutdown);
    tls.reload_on_hangup(hangups, &tasks, &shutdown);
    tasks.close();
    Ok(Running {
        api: listeners.addrs.api,
        tracking: listeners.addrs.tracking,
        bounce: listeners.addrs.bounce,
        tasks,
    })
}

/// The one line tests and scripts read to find the ports.
fn announce(running: &Running) {
    println!(
        "listening api={} tracking={} bounce={}",
        running.api, running.tracking, running.bounce
    );
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

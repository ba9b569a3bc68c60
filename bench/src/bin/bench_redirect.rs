//! The click-tracking redirect server alone, for `bench/redirect.sh`.
//!
//! Serves `clicktrack` on `--addr` (default `127.0.0.1:0`) with `--threads N`
//! runtime threads (default 1, a current-thread runtime, like nginx's one
//! worker). Every URL resolves link 0 of any message to
//! `http://example.com/`. Events go through a bounded channel with
//! `try_send` to a task that drains them in batches and counts them, as the
//! gateway's sink will (`--sink atomic` counts in the handler instead).
//! Prints `listening ADDR` and `url http://ADDR/c/TOKEN` once ready; on
//! SIGTERM or Ctrl-C stops and prints `events clicked=N refused=M`, N being
//! the clicks that reached the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use clicktrack::{
    EventKind, Keyring, LinkIndex, MessageNo, Overloaded, Rewriter, Tracking, TrackingEvent,
    TrackingSink,
};
use tokio::sync::mpsc;

// The daemon's allocator, so the figures are those of the tracking listener
// inside `sluice`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUEUE: usize = 65_536;
const BATCH: usize = 1024;

struct Sink {
    url: Arc<str>,
    queue: Option<mpsc::Sender<TrackingEvent>>,
    counted: AtomicU64,
    refused: AtomicU64,
}

impl TrackingSink for Sink {
    async fn resolve_link(
        &self,
        _message: MessageNo,
        link: LinkIndex,
    ) -> Result<Option<Arc<str>>, Overloaded> {
        Ok((link.0 == 0).then(|| self.url.clone()))
    }

    async fn knows_message(&self, _message: MessageNo) -> Result<bool, Overloaded> {
        Ok(true)
    }

    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        match &self.queue {
            Some(queue) => match queue.try_send(event) {
                Ok(()) => {
                    self.counted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    Err(Overloaded)
                }
            },
            None => {
                self.counted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// The benchmark redirects only; an unsubscribe counts like a click.
    async fn unsubscribe(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.record(event)
    }
}

struct Args {
    addr: String,
    threads: usize,
    channel: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        addr: "127.0.0.1:0".into(),
        threads: 1,
        channel: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => args.addr = value()?,
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            "--sink" => {
                args.channel = match value()?.as_str() {
                    "channel" => true,
                    "atomic" => false,
                    other => bail!("--sink channel|atomic, not {other:?}"),
                }
            }
            other => bail!("unknown argument {other:?} (--addr, --threads, --sink)"),
        }
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (queue, mut drain) = if args.channel {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let sink = Arc::new(Sink {
        url: Arc::from("http://example.com/"),
        queue,
        counted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    // The batching writer: where the gateway would group-commit to its store.
    let written = Arc::new(AtomicU64::new(0));
    if let Some(mut rx) = drain.take() {
        let written = written.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let clicked = batch
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Clicked { .. }))
                    .count() as u64;
                written.fetch_add(clicked, Ordering::Release);
                batch.clear();
            }
        });
    }

    // Install the handlers before announcing the address, so that a signal
    // sent as soon as the address is printed is not fatal.
    let shutdown = shutdown_signal()?;
    let keys = Arc::new(Keyring::from_secret(
        1,
        b"bench secret, thirty-two bytes!!",
    )?);
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let addr = listener.local_addr()?;
    let rewriter = Rewriter::new(keys.clone(), &format!("http://{addr}"))?;
    println!("listening {addr}");
    println!(
        "url {}",
        rewriter.click_url(MessageNo(30_000_000_001), LinkIndex(0))
    );

    let tracking = Tracking::new(sink.clone(), keys);
    clicktrack::serve(listener, tracking, 4096, None, shutdown).await?;

    let refused = sink.refused.load(Ordering::Relaxed);
    let accepted = sink.counted.load(Ordering::Relaxed);
    let clicked = if args.channel {
        // Wait for the writer to drain what the handlers queued.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while written.load(Ordering::Acquire) < accepted && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        written.load(Ordering::Acquire)
    } else {
        accepted
    };
    println!("events clicked={clicked} refused={refused}");
    Ok(())
}

fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

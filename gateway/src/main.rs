//! `sluice`: the command line of the gateway daemon.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use gateway::config::Config;
use tokio_util::sync::CancellationToken;

/// Allocation-heavy paths (uploads, facts) run markedly faster on mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Our own info logs; the storage engine's only when they matter.
const DEFAULT_LOG: &str = "info,fjall=warn,lsm_tree=warn";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Messaging gateway between a CRM and SMS/e-mail upstreams",
    after_help = "Configuration: docs/configuration.md (every key, its default and its SLUICE_SECTION__KEY \
                  override). Logs go to stderr; RUST_LOG filters them (default: info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (embedded store in ./sluice-data by default).
    ///
    /// Prints `listening api=ADDR tracking=ADDR bounce=ADDR` on stdout once
    /// every listener is bound. SIGTERM or SIGINT: finish the sends in
    /// flight (20 s at most) and exit; a second signal exits at once.
    Serve {
        /// TOML configuration file; without it every key has its default.
        /// SLUICE_SECTION__KEY environment variables override both.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Data directory of the embedded store (overrides store.path).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Validate a configuration file: print every problem (exit 1 if any)
    /// and every warning about example defaults left in place.
    CheckConfig {
        /// The TOML configuration file to check (environment overrides apply).
        file: PathBuf,
    },
    /// Work with returned mail.
    Bounce {
        #[command(subcommand)]
        command: BounceCommand,
    },
}

#[derive(Subcommand)]
enum BounceCommand {
    /// Classify returned messages (files, or stdin if none): one NDJSON line
    /// per recipient with kind (hard|soft|other) and reason.
    Classify {
        /// Raw RFC 822 messages (DSNs or free-text bounces); stdin if none.
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Bounce {
            command: BounceCommand::Classify { files },
        } => classify(&files),
        Command::Serve { config, data } => match serve(config, data) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Our errors say their cause in their own text: one line, no chain.
                eprintln!("sluice: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Prints every problem and every warning of `file`; fails on a problem.
fn check_config(file: &Path) -> ExitCode {
    let config = match Config::load(Some(file)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", file.display());
    }
    if let Err(e) = config.validate() {
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    match redis_check(&config) {
        Ok(warnings) => {
            for warning in warnings {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("{}: {problem}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// What the Redis of `store.url` says, when the redis engine is
/// configured, asked without writing to it: warnings, each naming its key,
/// when acknowledged writes could be lost (or why it cannot be asked), or
/// the problem `serve` would stop at (its version, too few replicas, a
/// store made with another count of shards).
fn redis_check(config: &Config) -> Result<Vec<String>, String> {
    if config.store.engine != "redis" {
        return Ok(Vec::new());
    }
    let options = match config
        .store
        .redis_options(format!("check-config-{}", std::process::id()))
    {
        Ok(options) => options,
        Err(why) => return Ok(vec![why]),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Ok(Vec::new());
    };
    // Each warning and problem names its key.
    runtime
        .block_on(store::redis::Redis::check(options))
        .map_err(|e| e.to_string())
}

fn serve(config: Option<PathBuf>, data: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = Config::load(config.as_deref())?;
    if let Some(dir) = data {
        config.store.path = dir;
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        gateway::run(config, shutdown).await
    })?;
    Ok(())
}

/// Prints the classification of each file; a file that cannot be read or
/// classified is reported on stderr and makes the exit code non-zero.
fn classify(files: &[PathBuf]) -> ExitCode {
    let inputs: Vec<(String, std::io::Result<Vec<u8>>)> = if files.is_empty() {
        let mut raw = Vec::new();
        let read = std::io::Read::read_to_end(&mut std::io::stdin(), &mut raw).map(|_| raw);
        vec![("-".to_owned(), read)]
    } else {
        files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read(f)))
            .collect()
    };
    let mut ok = true;
    for (name, raw) in inputs {
        match raw
            .map_err(|e| e.to_string())
            .and_then(|r| gateway::returns::classify_lines(&name, &r).map_err(|e| e.to_string()))
        {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    let Ok(mut int) = signal(SignalKind::interrupt()) else {
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round == 0 {
            tracing::info!("signal received: shutting down gracefully (again to exit at once)");
            shutdown.cancel();
        } else {
            std::process::exit(130);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and every argument says what it is in `--help`.
    #[test]
    fn every_command_and_flag_has_help_text() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str())
                {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "", &mut missing);
        assert_eq!(missing, Vec::<String>::new(), "without help text");
    }
}

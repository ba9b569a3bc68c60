//! `sluicectl`: the operator's command line over sluice's HTTP API
//! (`docs/cli.md`). Every command is one or a few API calls with the same
//! tokens and roles; errors print the API's problem details and exit 1.

mod client;
mod commands;
mod table;
mod upload;

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};

use client::{CallError, Client};

#[derive(Parser)]
#[command(
    name = "sluicectl",
    version,
    about = "Manage a sluice gateway over its HTTP API",
    after_help = "The token comes from SLUICE_TOKEN (a crm token for campaigns, uploads and \
                  events; an admin token for channels, connectors, blacklist and plans). \
                  Exit status: 0 done, 1 the API refused or could not be reached, 2 bad usage."
)]
pub struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:7800",
        global = true
    )]
    url: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Campaigns: list, show, start, pause, resume, cancel, delete.
    Campaigns {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Upload participants from a CSV (header: customer, address, segment,
    /// then one column per field) or NDJSON file.
    ///
    /// Every line is checked first (a dry run): a file with bad lines
    /// uploads nothing and each bad line is listed with its number and
    /// reason, unless --skip-bad uploads the good lines.
    Upload {
        campaign: String,
        file: PathBuf,
        /// Upload the good lines and list the bad ones.
        #[arg(long)]
        skip_bad: bool,
        /// The file's format (default: by its extension, `.csv` or else NDJSON).
        #[arg(long, value_enum)]
        format: Option<upload::Format>,
    },
    /// A channel's blacklist.
    Blacklist {
        #[command(subcommand)]
        command: BlacklistCommand,
    },
    /// Each channel's connectors and their health.
    Channels,
    /// Stop or start one connector (an SMTP relay or an SMSC) by name.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// A channel's stored load plan.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// What matched nothing, kept for a look: returned mail and SMSC
    /// receipts for unknown ids, newest first.
    Unmatched {
        #[command(subcommand)]
        command: UnmatchedCommand,
    },
    /// The fact feed from a cursor.
    Events {
        /// Facts after this cursor.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Facts per request.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Keep reading new facts as they come (Ctrl-C stops).
        #[arg(long, short)]
        follow: bool,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Campaigns, newest first.
    List {
        /// declared, running, paused, cancelled or finished.
        #[arg(long)]
        state: Option<String>,
        /// email or sms.
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: campaigns declared before this number (a page's `next`).
        #[arg(long)]
        before: Option<u32>,
    },
    /// One campaign: its declaration, counts and progress.
    Show {
        id: String,
    },
    Start {
        id: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// Remove a finished or cancelled campaign (its facts stay in the feed).
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum BlacklistCommand {
    /// Block customer ids or addresses on a channel.
    Add {
        channel: String,
        #[arg(required = true)]
        entries: Vec<String>,
    },
    /// Lift a block.
    Remove { channel: String, entry: String },
    /// Blocked entries in order (every reason), searched.
    List {
        channel: String,
        /// Entries containing this text.
        #[arg(long)]
        search: Option<String>,
        /// blacklisted, hard_bounce, unsubscribed, opted_out or complained.
        #[arg(long)]
        why: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: entries after this one (a page's `next`).
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UnmatchedCommand {
    /// Returned mail that matched no message, each as it was kept.
    Bounces {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The next page: items numbered below this (the last one shown).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Delivery receipts for SMSC ids no message has.
    Receipts {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: items numbered below this (the last one shown).
        #[arg(long)]
        before: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// Drain and disconnect it; messages wait for it.
    Stop { channel: String, name: String },
    /// Connect it again.
    Start { channel: String, name: String },
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// The stored plan, hour by hour.
    Show { channel: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sluicectl",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&CallError::Usage(e.to_string())),
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CallError::Usage(e.to_string())),
    };
    let token = std::env::var("SLUICE_TOKEN").ok();
    let outcome = runtime.block_on(async {
        let client = Client::new(&cli.url, token)?;
        commands::run(&client, cli.command, cli.json).await
    });
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints `e` (never a backtrace) and gives its exit status.
fn fail(e: &CallError) -> ExitCode {
    eprintln!("sluicectl: {e}");
    match e {
        CallError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

//! `cargo xtask`: the project's tasks, in Rust so they need nothing but cargo.
//!
//! - `cargo xtask test [ARGS]`: sets up every peer the tests need (see
//!   [`peers`]), then runs every test of the workspace, with cargo-nextest
//!   when it is installed and `cargo test` otherwise. ARGS go to the runner.
//! - `cargo xtask peers`: only sets up the peers.

mod peers;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

const USAGE: &str = "usage: cargo xtask test [ARGS for the test runner]
       cargo xtask peers

test   set up the peers the tests need (Debian packages, a Python venv and the
       npm SMSC under target/), then run every test of the workspace
       (cargo nextest when installed, else cargo test)
peers  only set up the peers";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let outcome = match args.next().as_deref() {
        Some("test") => peers::set_up().and_then(|()| run_tests(args.collect())),
        Some("peers") => peers::set_up(),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the daemon the end-to-end tests start, then runs every test.
fn run_tests(extra: Vec<String>) -> Result<(), String> {
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut tests = cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    run(tests.args(extra))
}

/// The cargo that started us.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs `command`, failing with its command line unless it succeeds.
fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// Whether `command` runs and exits 0, its output discarded.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`: where the peers go.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

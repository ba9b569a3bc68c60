//! Every external peer the end-to-end tests run, in one place: its name,
//! how its program is found, and how it is installed. `cargo xtask peers`
//! sets them all up; a test whose peer is missing fails, naming the peer,
//! that command and the one that installs this peer alone.
//!
//! Each accessor takes the test's [`MustReachEnd`], so that no test runs a
//! peer without the guard against returning early.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::MustReachEnd;

/// An external program (or module) a test needs.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// For the webhook receiver and `send_mail.py`.
    Python,
    /// For the SMTP peer, `smtp_peer.py`.
    Aiosmtpd,
    /// `smtp-sink`, `smtp-source`, and Postfix itself as a relay.
    Postfix,
    /// Renders the admin pages.
    Chromium,
    /// Runs the npm SMSC.
    Node,
    /// The npm SMSC's `smpp` module.
    NpmSmpp,
    /// `playwright-core`, which drives Chromium through the web console.
    PlaywrightCore,
    /// Makes the TLS proxy's throw-away certificates.
    Openssl,
    /// Lints the classic metrics exposition.
    Promtool,
    /// Parses the OpenMetrics exposition strictly.
    PrometheusClient,
    /// Tests the live API against its OpenAPI document.
    Schemathesis,
    /// Verifies DKIM signatures, independently of sluice's signer.
    Dkimpy,
    /// The Redis the nodes of the Redis engine share.
    RedisServer,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Python => "python3",
            Self::Aiosmtpd => "python3 with aiosmtpd",
            Self::Postfix => "postfix (smtp-sink, smtp-source, its smtpd)",
            Self::Chromium => "chromium",
            Self::Node => "node",
            Self::NpmSmpp => "the npm smpp module of tests/peers/npm_smsc",
            Self::PlaywrightCore => "the npm playwright-core module of tests/peers/console",
            Self::Openssl => "openssl",
            Self::Promtool => "promtool (Debian's prometheus)",
            Self::PrometheusClient => "python3 with prometheus_client",
            Self::Schemathesis => "python3 with schemathesis",
            Self::Dkimpy => "python3 with dkimpy",
            Self::RedisServer => "redis-server",
        }
    }

    /// The command that installs this peer alone.
    fn install(self) -> String {
        let apt = |packages| format!("sudo apt-get install -y {packages}");
        match self {
            Self::Python => apt("python3"),
            Self::Aiosmtpd | Self::PrometheusClient | Self::Schemathesis | Self::Dkimpy => {
                format!("python3 -m pip install {}", python_requirements())
            }
            Self::Postfix => apt("postfix"),
            Self::Chromium => apt("chromium"),
            Self::Node => apt("nodejs npm"),
            Self::NpmSmpp => "npm ci --prefix tests/peers/npm_smsc".to_owned(),
            Self::PlaywrightCore => "npm ci --prefix tests/peers/console".to_owned(),
            Self::Openssl => apt("openssl"),
            Self::Promtool => apt("prometheus"),
            Self::RedisServer => apt("redis-server"),
        }
    }

    /// What `cargo xtask peers` does for this peer, where that is not
    /// [`install`](Self::install).
    fn by_xtask(self) -> String {
        match self {
            Self::Aiosmtpd | Self::PrometheusClient | Self::Schemathesis | Self::Dkimpy => {
                let venv = venv();
                let shown = venv.strip_prefix(workspace_root()).unwrap_or(&venv);
                format!(
                    " (it creates {} with {})",
                    shown.display(),
                    python_requirements()
                )
            }
            _ => String::new(),
        }
    }

    /// Why a test fails without this peer, and what to run.
    fn missing_message(self) -> String {
        format!(
            "{} is required by this test and is missing: run `cargo xtask peers`{}, or `{}`",
            self.name(),
            self.by_xtask(),
            self.install()
        )
    }

    /// Fails the test: this peer is missing.
    fn missing(self) -> ! {
        panic!("{}", self.missing_message())
    }

    /// Fails the test, naming this peer, unless `check` runs and succeeds.
    fn require(self, check: &mut Command) {
        let ok = check
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            self.missing();
        }
    }

    /// A command running `program`, once `program version_arg` has shown
    /// that it is there.
    fn command(self, program: impl AsRef<OsStr>, version_arg: &str) -> Command {
        self.require(Command::new(&program).arg(version_arg));
        Command::new(program)
    }
}

/// The Python packages the Python peers need, pinned, as `cargo xtask
/// peers` installs them.
fn python_requirements() -> String {
    include_str!("../peers/requirements.txt")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The workspace's root directory.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Where `cargo xtask peers` makes the Python venv: `peers/venv` in
/// `$CARGO_TARGET_DIR` (relative to the workspace root), else in the
/// workspace's `target`.
fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    workspace_root().join(target).join("peers").join("venv")
}

/// The directory with the peers' scripts.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// `tests/peers/npm_smsc`, the npm SMSC.
pub fn npm_smsc_dir() -> PathBuf {
    peers_dir().join("npm_smsc")
}

/// The Python the peers run on: the venv's that `cargo xtask peers` makes
/// when there is one, else `python3` on PATH (a system Python with the
/// requirements installed serves as well).
pub fn python(_end: &MustReachEnd) -> Command {
    let venv_python = venv().join("bin").join("python3");
    let program = if venv_python.is_file() {
        venv_python
    } else {
        PathBuf::from("python3")
    };
    Peer::Python.command(program, "--version")
}

/// [`python`], once it has shown that it can import aiosmtpd.
pub fn python_with_aiosmtpd(end: &MustReachEnd) -> Command {
    Peer::Aiosmtpd.require(python(end).args(["-c", "import aiosmtpd"]));
    python(end)
}

/// [`python`], once it has shown that it can import prometheus_client.
pub fn python_with_prometheus_client(end: &MustReachEnd) -> Command {
    Peer::PrometheusClient.require(python(end).args(["-c", "import prometheus_client"]));
    python(end)
}

/// `tests/peers/dkim_verify.py` on [`python`], once it has shown that it
/// can import dkimpy.
pub fn dkim_verify(end: &MustReachEnd) -> Command {
    Peer::Dkimpy.require(python(end).args(["-c", "import dkim"]));
    let mut command = python(end);
    command.arg(peers_dir().join("dkim_verify.py"));
    command
}

/// Schemathesis's command line (`python3 -m schemathesis.cli`), once
/// [`python`] has shown that it can import it.
pub fn schemathesis(end: &MustReachEnd) -> Command {
    Peer::Schemathesis.require(python(end).args(["-c", "import schemathesis"]));
    let mut command = python(end);
    command.args(["-m", "schemathesis.cli"]);
    command
}

/// `promtool`, Prometheus's own checker.
pub fn promtool(_end: &MustReachEnd) -> Command {
    Peer::Promtool.command("promtool", "--version")
}

/// Where Debian's `postfix` package puts its test programs.
const SBIN: &str = "/usr/sbin";

/// The path of a Postfix program (`smtp-sink`, `smtp-source`, `postfix`), from
/// `/usr/sbin` or PATH.
pub fn postfix_program(_end: &MustReachEnd, name: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(PathBuf::from(SBIN))
        .chain(path_dirs)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Peer::Postfix.missing())
}

/// Headless `chromium`, to render the admin pages.
pub fn chromium(_end: &MustReachEnd) -> Command {
    Peer::Chromium.command("chromium", "--version")
}

/// `node`, in [`npm_smsc_dir`] with its `smpp` module there.
pub fn node_with_smpp(_end: &MustReachEnd) -> Command {
    let mut node = Peer::Node.command("node", "--version");
    let dir = npm_smsc_dir();
    if !dir.join("node_modules/smpp/package.json").is_file() {
        Peer::NpmSmpp.missing();
    }
    node.current_dir(dir);
    node
}

/// `node` running the console check (`tests/peers/console/check.mjs`,
/// which drives [`chromium`] with its `playwright-core` module).
pub fn node_with_playwright(end: &MustReachEnd) -> Command {
    chromium(end);
    let mut node = Peer::Node.command("node", "--version");
    let dir = peers_dir().join("console");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        Peer::PlaywrightCore.missing();
    }
    node.current_dir(dir).arg("check.mjs");
    node
}

/// `redis-server`, for nodes sharing one Redis.
pub fn redis_server(_end: &MustReachEnd) -> Command {
    Peer::RedisServer.command("redis-server", "--version")
}

/// `redis-cli`, which comes with `redis-server`.
pub fn redis_cli(_end: &MustReachEnd) -> Command {
    Peer::RedisServer.command("redis-cli", "--version")
}

/// `openssl`, to make certificates.
pub fn openssl(_end: &MustReachEnd) -> Command {
    Peer::Openssl.command("openssl", "version")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::must_reach_end;

    #[test]
    #[should_panic(
        expected = "chromium is required by this test and is missing: run `cargo xtask peers`, or `sudo apt-get install -y chromium`"
    )]
    fn a_missing_peer_fails_the_test_naming_its_install_command() {
        Peer::Chromium.require(&mut Command::new("/nonexistent/chromium"));
    }

    #[test]
    #[should_panic(expected = "or `sudo apt-get install -y postfix`")]
    fn a_missing_postfix_program_fails_naming_the_package() {
        postfix_program(&must_reach_end(), "smtp-sink-that-does-not-exist");
    }

    #[test]
    fn missing_aiosmtpd_names_the_venv_and_the_pinned_release() {
        let pins = python_requirements();
        assert!(pins.starts_with("aiosmtpd=="), "{pins}");
        let message = Peer::Aiosmtpd.missing_message();
        assert!(
            message.starts_with("python3 with aiosmtpd is required by this test and is missing: run `cargo xtask peers` (it creates "),
            "{message}"
        );
        assert!(
            message.ends_with(&format!(
                "peers/venv with {pins}), or `python3 -m pip install {pins}`"
            )),
            "{message}"
        );
    }
}

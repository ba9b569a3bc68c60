//! The peers the tests run against, set up where they are missing: Debian
//! packages (`redis-server` among them) (installed when we are root or may `sudo` without a password,
//! else we stop with the exact command), Python's `aiosmtpd`,
//! `prometheus_client` and `schemathesis` in a venv under
//! `target/peers/venv`, the npm `smpp` server in `tests/peers/npm_smsc`
//! and `playwright-core` for the console check in `tests/peers/console`.

use std::{path::Path, process::Command};

use crate::{run, succeeds, target_dir, workspace_root};

/// A Debian package a test needs, and how to tell it is there.
struct DebianPeer {
    package: &'static str,
    present: fn() -> bool,
}

const DEBIAN_PEERS: &[DebianPeer] = &[
    // smtp-sink: an SMTP server that answers every RCPT as told.
    DebianPeer {
        package: "postfix",
        present: || Path::new("/usr/sbin/smtp-sink").is_file() || on_path("smtp-sink"),
    },
    // The plan chart is rendered in a real headless browser.
    DebianPeer {
        package: "chromium",
        present: || on_path("chromium"),
    },
    // The npm `smpp` SMSC.
    DebianPeer {
        package: "nodejs",
        present: || on_path("node"),
    },
    DebianPeer {
        package: "npm",
        present: || on_path("npm"),
    },
    // Throw-away certificates for the TLS tests.
    DebianPeer {
        package: "openssl",
        present: || on_path("openssl"),
    },
    DebianPeer {
        package: "ca-certificates",
        present: || Path::new("/etc/ssl/certs/ca-certificates.crt").is_file(),
    },
    // promtool lints the metrics exposition.
    DebianPeer {
        package: "prometheus",
        present: || on_path("promtool"),
    },
    // The Redis engine's contract and the nodes sharing one Redis.
    DebianPeer {
        package: "redis-server",
        present: || on_path("redis-server"),
    },
    // Debian's python3 creates venvs only with this package.
    DebianPeer {
        package: "python3-venv",
        present: || succeeds(Command::new("python3").args(["-m", "venv", "--help"])),
    },
];

/// Sets up every peer, or says what to run when it cannot.
pub fn set_up() -> Result<(), String> {
    debian_packages()?;
    python_venv()?;
    npm_module("tests/peers/npm_smsc", "smpp")?;
    npm_module("tests/peers/console", "playwright-core")
}

fn debian_packages() -> Result<(), String> {
    let missing: Vec<&str> = DEBIAN_PEERS
        .iter()
        .filter(|p| !(p.present)())
        .map(|p| p.package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {}",
        missing.join(" ")
    );
    if !on_path("apt-get") {
        return Err(format!(
            "the tests need these Debian packages (or your system's equivalent): {}",
            missing.join(" ")
        ));
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    eprintln!(
        "xtask: installing the tests' Debian peers: {}",
        missing.join(" ")
    );
    if root {
        run(Command::new("sh").args(["-c", &install]))
    } else if succeeds(Command::new("sudo").args(["-n", "true"])) {
        run(Command::new("sudo").args(["sh", "-c", &install]))
    } else {
        Err(format!(
            "the tests need Debian packages that are missing: run `sudo sh -c '{install}'`, then this command again"
        ))
    }
}

/// The modules of tests/peers/requirements.txt, as Python imports them.
const PYTHON_MODULES: &str = "import aiosmtpd, dkim, prometheus_client, schemathesis";

/// The pinned packages of tests/peers/requirements.txt in
/// `target/peers/venv`, where the tests look for their Python first.
fn python_venv() -> Result<(), String> {
    let venv = target_dir().join("peers").join("venv");
    let python = venv.join("bin").join("python3");
    let requirements = workspace_root().join("tests/peers/requirements.txt");
    if succeeds(Command::new(&python).args(["-c", PYTHON_MODULES])) {
        return Ok(());
    }
    eprintln!(
        "xtask: setting up {} with {}",
        venv.display(),
        requirements.display()
    );
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements))
}

/// The npm `module` of the peer in `dir` (the npm SMSC's `smpp`, the
/// console check's `playwright-core`), installed from its lock file.
fn npm_module(dir: &str, module: &str) -> Result<(), String> {
    let dir = workspace_root().join(dir);
    if dir
        .join("node_modules")
        .join(module)
        .join("package.json")
        .is_file()
    {
        return Ok(());
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

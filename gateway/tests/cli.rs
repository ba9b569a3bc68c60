//! The `sluice` command line: `check-config` reports every problem and sets
//! the exit code; `serve` refuses, in one line naming the fix, what it
//! cannot do. (Being an integration test also makes cargo build the binary
//! the end-to-end tests run.)

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output, Stdio},
};

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sluice.toml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_good_file_passes() {
    let (ok, out) = check(
        "[listen]\napi = \"127.0.0.1:0\"\n[[email.relays]]\nhost = \"127.0.0.1\"\nport = 2525\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn every_problem_is_printed_and_the_exit_code_fails() {
    let (ok, out) = check(
        "[listen]\napi = \"nowhere\"\nbounce = \"also-nowhere\"\n[email]\nmax_attempts = 0\n",
    );
    assert!(!ok);
    assert!(out.contains("listen.api"), "{out}");
    assert!(out.contains("listen.bounce"), "{out}");
    assert!(out.contains("email.max_attempts"), "{out}");
}

#[test]
fn unknown_keys_and_bad_toml_fail() {
    let (ok, out) = check("[listen]\nap = \"127.0.0.1:0\"\n");
    assert!(!ok);
    assert!(out.contains("ap"), "{out}");
    let (ok, _) = check("[listen\n");
    assert!(!ok);
}

#[test]
fn unset_secrets_and_the_examples_defaults_are_reported_in_one_run() {
    let (ok, out) = check(
        "[listen]\ntracking = \"0.0.0.0:7801\"\n[[email.relays]]\nhost = \"relay.example\"\n\
         username = \"u\"\npassword_env = \"SLUICE_TEST_UNSET_RELAY_PASSWORD\"\n[email]\nmax_attempts = 0\n",
    );
    assert!(!ok, "{out}");
    for expected in [
        "email.relays[0].password_env: environment variable SLUICE_TEST_UNSET_RELAY_PASSWORD is not set",
        "email.max_attempts",
        "warning: email.bounce_domain is the example `bounces.example.com`",
        "warning: tracking.base_url `http://127.0.0.1:7801` is a loopback address",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// `sluice serve` on `data` with every listener on a free port but those
/// `env` sets.
fn serve(data: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--data"])
        .arg(data)
        .env("SLUICE_LISTEN__API", "127.0.0.1:0")
        .env("SLUICE_LISTEN__TRACKING", "127.0.0.1:0")
        .env("SLUICE_LISTEN__BOUNCE", "127.0.0.1:0")
        .envs(env.iter().copied());
    command
}

/// The stderr of a run that must have failed: its last line, after at most
/// the warnings logged before the failure.
fn refusal(out: &Output) -> String {
    assert!(!out.status.success(), "it must refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn a_listen_port_in_use_names_its_config_key_and_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = serve(dir.path(), &[("SLUICE_LISTEN__BOUNCE", &addr)])
        .output()
        .expect("run");
    assert_eq!(
        refusal(&out),
        format!(
            "sluice: listen.bounce: cannot listen on {addr}: the address is in use by another program (another sluice?); set listen.bounce to a free address"
        )
    );
}

/// Kills the first daemon even when the test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_daemon_on_the_same_data_directory_says_whose_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut first = Running(
        serve(&data, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let mut announced = String::new();
    BufReader::new(first.0.stdout.take().expect("stdout"))
        .read_line(&mut announced)
        .expect("read");
    assert!(announced.starts_with("listening "), "{announced}");
    let out = serve(&data, &[]).output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "one line, nothing before it"
    );
    assert_eq!(
        refusal(&out),
        format!(
            "sluice: store: data directory {} is in use by pid {}",
            data.display(),
            first.0.id()
        )
    );
}

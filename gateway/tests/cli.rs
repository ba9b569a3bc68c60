//! The `sluice` command line: `check-config` reports every problem and sets
//! the exit code. (Being an integration test also makes cargo build the
//! binary the end-to-end tests run.)

use std::process::Command;

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

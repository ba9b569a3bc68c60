//! `sluicectl` against a running daemon: tables and `--json`, the token from
//! `SLUICE_TOKEN`, uploads that refuse a file with bad lines unless told to
//! skip them, and the API's problems printed without a backtrace.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::{Value, json};
use sluice_e2e::{Daemon, sluicectl_bin};

const TOKENS: &str = "crm:crm-secret,admin:admin-secret";

struct Ctl<'a> {
    daemon: &'a Daemon,
    token: &'a str,
}

impl Ctl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(sluicectl_bin())
            .args(args)
            .env("SLUICE_URL", format!("http://{}", self.daemon.api))
            .env("SLUICE_TOKEN", self.token)
            .output()
            .unwrap()
    }

    /// Runs and expects success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn campaigns_uploads_and_the_blacklist_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(dir.path(), "", &[("SLUICE_API_TOKENS", TOKENS)]);
    let crm = Ctl {
        daemon: &daemon,
        token: "crm-secret",
    };
    let admin = Ctl {
        daemon: &daemon,
        token: "admin-secret",
    };
    let nobody = Ctl {
        daemon: &daemon,
        token: "",
    };

    let refused = nobody.run(&["campaigns", "list"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = text(&refused.stderr);
    assert!(said.starts_with("sluicectl: 401 Unauthorized"), "{said}");
    assert!(
        !said.contains("panicked") && !said.contains("backtrace"),
        "{said}"
    );

    let declared = sluice_e2e::request(
        "PUT",
        &daemon.api,
        "/v1/campaigns/spring",
        &[
            ("authorization", "Bearer crm-secret"),
            ("content-type", "application/json"),
        ],
        json!({"channel": "email", "name": "Spring sale", "content": {"email": {
            "from": "news@shop.example", "subject": "Hi {{name}}", "text": "Hi {{name}}"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(declared.status, 200, "{}", declared.text());
    let table = crm.ok(&["campaigns", "list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("spring ") && row.contains("declared") && row.ends_with("Spring sale"),
        "{table}"
    );
    assert_eq!(
        crm.json(&["campaigns", "list"])["campaigns"][0]["id"],
        "spring"
    );

    // A CSV with a bad line: nothing goes up unless told to skip it.
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "customer,address,name\nc1,ann@example.org,Ann\nc2,not-an-address,Bob\n\nc3,cy@example.org,Cy\nc4,dee@example.org\n",
    )
    .unwrap();
    let path = csv.to_str().unwrap();
    let refused = crm.run(&["upload", "spring", path]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let said = text(&refused.stdout);
    assert!(
        said.contains("line 3: "),
        "the bad address by its file line: {said}"
    );
    assert!(
        said.contains("line 6: 2 columns where the header has 3"),
        "{said}"
    );
    assert!(said.contains("nothing uploaded: 2 bad lines"), "{said}");
    let after_refusal = crm.json(&["campaigns", "show", "spring"]);
    assert_eq!(
        (&after_refusal["participants"], &after_refusal["uploading"]),
        (&json!(0), &json!(0)),
        "the dry run left nothing: {after_refusal}"
    );

    let skipped = crm.json(&["upload", "spring", path, "--skip-bad"]);
    assert_eq!(
        (
            &skipped["stored"],
            &skipped["accepted"],
            &skipped["rejected_total"]
        ),
        (&json!(true), &json!(2), &json!(2)),
        "{skipped}"
    );
    assert_eq!(skipped["rejected"][0]["line"], 3, "{skipped}");
    let shown = crm.ok(&["campaigns", "show", "spring"]);
    assert!(shown.contains("participants: 2"), "{shown}");
    assert!(shown.contains("pending: 2"), "{shown}");

    let missing = crm.run(&["campaigns", "start", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).starts_with("sluicectl: 404 Not Found: "),
        "{}",
        text(&missing.stderr)
    );

    // The blacklist and channels need the admin token.
    let forbidden = crm.run(&["blacklist", "add", "email", "x@example.org"]);
    assert!(
        text(&forbidden.stderr).contains("403"),
        "{}",
        text(&forbidden.stderr)
    );
    assert_eq!(
        admin.ok(&["blacklist", "add", "email", "Bad@Example.org", "c9"]),
        "added 2\n"
    );
    let listed = admin.ok(&["blacklist", "list", "email", "--search", "example"]);
    assert_eq!(
        listed,
        "ENTRY            WHY\nbad@example.org  blacklisted\n"
    );
    let first = admin.ok(&["blacklist", "list", "email", "--limit", "1"]);
    assert!(
        first.ends_with("(more: --after 'bad@example.org')\n"),
        "{first}"
    );
    let second = admin.ok(&["blacklist", "list", "email", "--after", "bad@example.org"]);
    assert_eq!(second, "ENTRY  WHY\nc9     blacklisted\n");
    admin.ok(&["blacklist", "remove", "email", "c9"]);
    assert_eq!(
        admin.json(&["blacklist", "list", "email"])["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(admin.json(&["channels"])["channels"][0]["channel"], "email");

    let events = crm.ok(&["events"]);
    assert!(events.starts_with("CURSOR"), "{events}");
    let accepted = events.lines().filter(|l| l.contains(" accepted ")).count();
    assert_eq!(
        accepted, 2,
        "one accepted fact per uploaded participant: {events}"
    );
    let feed = crm.ok(&["events", "--json", "--after", "1"]);
    assert_eq!(
        feed.lines().count(),
        1,
        "after the first cursor, one fact: {feed}"
    );

    let open = crm.run(&["campaigns", "delete", "spring"]);
    assert_eq!(open.status.code(), Some(1));
    assert!(
        text(&open.stderr).starts_with("sluicectl: 409 Conflict: "),
        "only an ended campaign is deleted: {}",
        text(&open.stderr)
    );
    crm.ok(&["campaigns", "cancel", "spring"]);
    assert_eq!(
        crm.ok(&["campaigns", "delete", "spring"]),
        "deleted spring\n"
    );
    assert_eq!(
        crm.run(&["campaigns", "show", "spring"]).status.code(),
        Some(1)
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let bash = Command::new(sluicectl_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(
        script.contains("sluicectl") && script.contains("upload"),
        "{script}"
    );
    let man = Command::new(sluicectl_bin()).arg("man").output().unwrap();
    let page = text(&man.stdout);
    assert!(
        page.contains(".TH sluicectl") && page.contains("blacklist"),
        "{page}"
    );
    let unreachable = Command::new(sluicectl_bin())
        .args(["--url", "http://127.0.0.1:9", "channels"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let said = text(&unreachable.stderr);
    assert!(
        said.starts_with("sluicectl: cannot reach http://127.0.0.1:9"),
        "{said}"
    );
}

#[test]
fn what_matched_nothing_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(dir.path(), "", &[("SLUICE_API_TOKENS", TOKENS)]);
    let admin = Ctl {
        daemon: &daemon,
        token: "admin-secret",
    };
    let stray = b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\n\
        Content-Type: text/plain\r\n\r\n550 5.1.1 <someone@example.org>: User unknown\r\n";
    let imported = sluice_e2e::request(
        "POST",
        &daemon.api,
        "/v1/bounces",
        &[("authorization", "Bearer admin-secret")],
        stray,
    );
    assert_eq!(imported.status, 200, "{}", imported.text());
    assert_eq!(imported.json()["unmatched"], 1, "{}", imported.text());

    let bounces = admin.ok(&["unmatched", "bounces"]);
    assert!(
        bounces.starts_with("== 0 ==\nX-Sluice-Kept-At: "),
        "{bounces}"
    );
    assert!(
        bounces.contains("550 5.1.1 <someone@example.org>"),
        "{bounces}"
    );
    assert!(bounces.ends_with("(1 kept)\n"), "{bounces}");
    let page = admin.json(&["unmatched", "bounces", "--limit", "1"]);
    assert_eq!(
        (page["kept"].as_u64(), page["items"][0]["n"].as_u64()),
        (Some(1), Some(0))
    );

    let receipts = admin.ok(&["unmatched", "receipts"]);
    assert!(receipts.starts_with("N"), "{receipts}");
    assert!(receipts.ends_with("(0 kept)\n"), "{receipts}");
    let crm = Ctl {
        daemon: &daemon,
        token: "crm-secret",
    };
    let refused = crm.run(&["unmatched", "receipts"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).starts_with("sluicectl: 403"),
        "{}",
        text(&refused.stderr)
    );
}

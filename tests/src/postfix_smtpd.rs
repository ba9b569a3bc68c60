//! A private Postfix (its real `smtpd`, queue manager and `discard`
//! transport) as a relay that offers PIPELINING and CHUNKING, as a
//! production Postfix does: every message it accepts is discarded,
//! recipients `gone@...` are refused at RCPT (`550 5.1.1`), and a body line
//! `spam` is refused at the message's end (`550 5.7.1`). Its log tells
//! which recipients it took and which commands each session used.
//!
//! [`PostfixSmtpd`] writes its own configuration, queue and log under a
//! directory of its own, never touching the system's `/etc/postfix`
//! instance (nor needing it to run), starts it on a free loopback port
//! and stops it on drop. Postfix runs its daemons as user `postfix`, so
//! this needs root, as the suite's set-up does; the `postfix` package is a
//! peer like any other ([`crate::peers`]).

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime},
};

use crate::{MustReachEnd, free_port, peers::postfix_program, smtp_sink::running_as_root};

/// A running private Postfix.
pub struct PostfixSmtpd {
    /// The loopback port its `smtpd` listens on.
    pub port: u16,
    postfix: PathBuf,
    dir: tempfile::TempDir,
}

impl PostfixSmtpd {
    /// Starts one and waits until its `smtpd` greets.
    pub fn start(end: &MustReachEnd) -> Self {
        let postfix = postfix_program(end, "postfix");
        assert!(
            running_as_root(),
            "Postfix's smtpd as a test relay needs root (its master starts its daemons as \
             user postfix): run the tests as root, as CI does"
        );
        // The port is found free, released, then bound by Postfix: another
        // test may take it meanwhile, so a start that fails tries another.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_on(&postfix, free_port()) {
                Ok(smtpd) => return smtpd,
                Err(why) => failures.push(why),
            }
        }
        panic!("Postfix's smtpd did not start: {failures:#?}");
    }

    fn start_on(postfix: &Path, port: u16) -> Result<Self, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let hostname = format!(
            "peer{}-{}.test",
            STARTED.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // Its daemons run as user postfix and work in the queue below.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["etc", "log", "queue"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        write_config(dir.path(), port, &hostname);
        let smtpd = Self {
            port,
            postfix: postfix.to_owned(),
            dir,
        };
        let started = smtpd.postfix("start");
        if !started.status.success() {
            return Err(format!(
                "postfix start: {}{}\n{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                smtpd.log()
            ));
        }
        // Its own greeting, not that of whatever else took the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !greets_as(port, &hostname) {
            if Instant::now() > deadline {
                return Err(format!(
                    "no greeting from {hostname} on 127.0.0.1:{port} within 10 s:\n{}",
                    smtpd.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(smtpd)
    }

    /// Whether every message it accepted so far has left its queue.
    pub fn queue_empty(&self) -> bool {
        let log = self.log();
        log.matches("(queue active)").count() == log.matches(": removed").count()
    }

    /// Whether every session it was opened so far has ended.
    pub fn sessions_ended(&self) -> bool {
        let log = self.log();
        log.matches("]: connect from ").count() == log.matches("]: disconnect from ").count()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log/maillog")).unwrap_or_default()
    }

    /// The recipients of the messages it accepted and delivered (to
    /// `discard`), as it logged them, one entry per delivery.
    pub fn delivered(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("status=sent (discarded)"))
            .filter_map(|l| {
                let to = l.split_once(" to=<")?.1;
                Some(to.split_once('>')?.0.to_owned())
            })
            .collect()
    }

    /// The command counts of each ended session that gave a `MAIL FROM`,
    /// as its `disconnect` line has them: `ehlo=1 mail=3 rcpt=2/3 bdat=2/3
    /// rset=1 quit=1 commands=10/12` (refused ones after the slash).
    pub fn sessions(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("]: disconnect from ")?.1.split_once(' '))
            .map(|(_, counts)| counts.to_owned())
            .filter(|counts| counts.contains("mail="))
            .collect()
    }

    fn postfix(&self, command: &str) -> std::process::Output {
        Command::new(&self.postfix)
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg(command)
            .output()
            .expect("run postfix")
    }

    /// The master's process id, which is also its process group's.
    fn master(&self) -> Option<i32> {
        fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PostfixSmtpd {
    fn drop(&mut self) {
        let Some(master) = self.master() else {
            return;
        };
        // `abort` is `stop` without its second of polling; the master takes
        // its daemons down with it.
        let _ = self.postfix("abort");
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_alive(master) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if group_alive(master) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{master}")])
                .status();
        }
    }
}

/// Whether the server on `port` greets as `hostname`.
fn greets_as(port: u16, hostname: &str) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = String::new();
    let greets = BufReader::new(&stream).read_line(&mut greeting).is_ok()
        && greeting.starts_with(&format!("220 {hostname} "));
    let _ = (&stream).write_all(b"QUIT\r\n");
    greets
}

/// Whether a process of process group `group` is still running (one that
/// exited but is not reaped yet does not count).
fn group_alive(group: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces.
        let Some((_, after)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
    })
}

/// `main.cf`, `master.cf` and the two refusal tables of an instance in
/// `dir` whose `smtpd` listens on `port` and greets as `hostname`.
fn write_config(dir: &Path, port: u16, hostname: &str) {
    let d = dir.display();
    let main = format!(
        "compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
multi_instance_wrapper =
multi_instance_directories =
syslog_name = postfix-peer-{port}
maillog_file = {d}/log/maillog
maillog_file_prefixes = {d}/log
myhostname = {hostname}
mydomain = test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
default_transport = discard:discarded
relay_transport = discard:discarded
local_transport = discard:discarded
virtual_transport = discard:discarded
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
append_dot_mydomain = no
smtpd_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:{d}/etc/recipient_access, permit_mynetworks, reject
body_checks = regexp:{d}/etc/body_checks
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
"
    );
    // Every service out of a chroot; the smtpd on the test's port.
    let master = format!(
        "127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    );
    let files = [
        ("main.cf", main),
        ("master.cf", master),
        (
            "recipient_access",
            "/^gone@/ 550 5.1.1 User unknown (test peer)\n".to_owned(),
        ),
        (
            "body_checks",
            "/^spam$/ REJECT 5.7.1 Spam line rejected by test peer\n".to_owned(),
        ),
    ];
    // Postfix waits for a main.cf changed within the current second to
    // settle (about 2 s): these are dated 10 s back.
    let settled = SystemTime::now() - Duration::from_secs(10);
    for (name, text) in files {
        let path = dir.join("etc").join(name);
        fs::write(&path, text).expect("write config");
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(settled))
            .expect("date config");
    }
}

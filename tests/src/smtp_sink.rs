//! Postfix's own test programs as peers: `smtp-sink` (an SMTP server that
//! accepts or refuses every recipient the way it is told) as the relay, and
//! `smtp-source` (a plain SMTP client) to hand mail to the daemon's bounce
//! listener as a remote MTA would.
//!
//! [`SmtpSink`] runs one `smtp-sink` on an ephemeral loopback port, waits
//! until it greets, records the SMTP commands it was sent (its `-v` log)
//! and, when it accepts mail, every message it received (its `-d` dumps);
//! it is killed on drop. Both programs come with the `postfix` package; as
//! with every peer, a missing program fails the test, naming the package
//! ([`crate::peers`]).

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::{MustReachEnd, peers::postfix_program};

/// How the sink answers `RCPT TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcpt<'a> {
    /// Accept every recipient and every message (`250`).
    Accept,
    /// Refuse every recipient with this reply (`550 5.1.1 ...` is passed
    /// as `-f RCPT -B`, `452 4.2.2 ...` as `-r RCPT -b`).
    Refuse(&'a str),
}

/// One mail transaction as the sink's `-v` log shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The `MAIL FROM` address, without angle brackets.
    pub mail_from: String,
    /// The `RCPT TO` addresses, accepted or not.
    pub rcpt_tos: Vec<String>,
    /// Whether the client sent `DATA`.
    pub data: bool,
    /// Whether the message was completed (the final `.`).
    pub completed: bool,
}

/// One message the sink accepted, as it dumped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `MAIL FROM` address, without angle brackets.
    pub mail_from: String,
    /// The `RCPT TO` addresses.
    pub rcpt_tos: Vec<String>,
    /// Header and body as the client sent them, dot-stuffing undone; line
    /// ends are `\n` (smtp-sink writes its dumps that way).
    pub content: String,
}

/// A running `smtp-sink`.
pub struct SmtpSink {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    /// The name it greets with (unique per sink).
    pub hostname: String,
    log: PathBuf,
    dumps: Option<PathBuf>,
}

impl SmtpSink {
    /// Starts `smtp-sink` on `127.0.0.1` on a free port, its files under
    /// `dir`, and waits until it greets. Panics when it cannot start.
    pub fn start(end: &MustReachEnd, dir: &Path, rcpt: Rcpt<'_>) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let bin = postfix_program(end, "smtp-sink");
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let hostname = format!("sink{n}-{}.test", std::process::id());
        let mut failures = Vec::new();
        // The port is found free, released, then taken by smtp-sink: another
        // process may take it in between, so try a few ports.
        for attempt in 0..5 {
            let port = crate::free_port();
            let log = dir.join(format!("smtp-sink-{n}-{attempt}.log"));
            let dumps = (rcpt == Rcpt::Accept).then(|| {
                let d = dir.join(format!("smtp-sink-{n}-{attempt}"));
                std::fs::create_dir_all(&d).unwrap();
                d
            });
            let mut cmd = Command::new(&bin);
            cmd.arg("-v").args(["-h", &hostname]);
            if running_as_root() {
                // smtp-sink refuses to run as root without -u; root keeps
                // it able to write its dumps in our private directory.
                cmd.args(["-u", "root"]);
            }
            if let Some(d) = &dumps {
                cmd.arg("-d").arg(d.join("msg."));
            }
            match rcpt {
                Rcpt::Accept => {}
                Rcpt::Refuse(reply) if reply.starts_with('5') => {
                    cmd.args(["-f", "RCPT", "-B", reply]);
                }
                Rcpt::Refuse(reply) if reply.starts_with('4') => {
                    cmd.args(["-r", "RCPT", "-b", reply]);
                }
                Rcpt::Refuse(reply) => panic!("not a 4xx or 5xx reply: {reply:?}"),
            }
            cmd.arg(format!("127.0.0.1:{port}")).arg("64");
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut sink = Self {
                child,
                port,
                hostname: hostname.clone(),
                log,
                dumps,
            };
            match sink.wait_until_it_greets(Duration::from_secs(10)) {
                Ok(()) => return sink,
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        panic!("smtp-sink did not start: {failures:#?}");
    }

    /// `host:port` to connect to.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `[[email.relays]]` entry for this sink, with one connection: the
    /// `-v` log does not say which connection a command came on, so
    /// [`transactions`](Self::transactions) needs them one after another.
    pub fn relay_config(&self) -> String {
        format!(
            "[[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\nconnections = 1\n",
            self.port
        )
    }

    /// Connects until the greeting names this sink (not some other server
    /// that took the port), then says QUIT.
    fn wait_until_it_greets(&mut self, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut greeting = String::new();
                let mut reader = BufReader::new(&stream);
                let _ = reader.read_line(&mut greeting);
                let _ = (&stream).write_all(b"QUIT\r\n");
                if greeting.starts_with("220 ") && greeting.contains(&self.hostname) {
                    return Ok(());
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("another server answered: {greeting:?}"));
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "not listening after {deadline:?}: {}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The commands the sink was sent, one `(verb, argument)` per line of
    /// its `-v` log (`("mail", "FROM:<a@b>")`, `("rcpt", "TO:<c@d>")`,
    /// `("data", "")`, `(".", "")`); the verb lowercase.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.log_text()
            .lines()
            .filter_map(|line| line.split_once("smtp-sink: ").map(|(_, rest)| rest))
            .map(|rest| {
                let (verb, arg) = rest.split_once(' ').unwrap_or((rest, ""));
                (verb.to_ascii_lowercase(), arg.trim().to_owned())
            })
            .collect()
    }

    /// The mail transactions, in order, from the commands (sessions must
    /// not overlap: see [`relay_config`](Self::relay_config)).
    pub fn transactions(&self) -> Vec<Transaction> {
        let mut out: Vec<Transaction> = Vec::new();
        let mut open = false;
        for (verb, arg) in self.commands() {
            match verb.as_str() {
                "mail" => {
                    out.push(Transaction {
                        mail_from: angle_address(&arg, "from:"),
                        ..Transaction::default()
                    });
                    open = true;
                }
                "rcpt" if open => {
                    if let Some(t) = out.last_mut() {
                        t.rcpt_tos.push(angle_address(&arg, "to:"));
                    }
                }
                "data" if open => {
                    if let Some(t) = out.last_mut() {
                        t.data = true;
                    }
                }
                "." if open => {
                    if let Some(t) = out.last_mut() {
                        t.completed = true;
                    }
                    open = false;
                }
                "rset" | "quit" | "disconnect" => open = false,
                _ => {}
            }
        }
        out
    }

    /// How many times `RCPT TO:<address>` was sent.
    pub fn rcpt_count(&self, address: &str) -> usize {
        self.transactions()
            .iter()
            .flat_map(|t| &t.rcpt_tos)
            .filter(|r| r.eq_ignore_ascii_case(address))
            .count()
    }

    /// The messages received (an accepting sink; empty for one that
    /// refuses), in the order their dumps were last written. A dump is
    /// read once complete.
    pub fn messages(&self) -> Vec<Message> {
        let Some(dir) = &self.dumps else {
            return Vec::new();
        };
        let mut dumps: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let written = std::fs::metadata(&path).unwrap().modified().unwrap();
                (written, path)
            })
            .collect();
        dumps.sort();
        dumps
            .into_iter()
            .filter_map(|(_, path)| parse_dump(&std::fs::read_to_string(path).unwrap()))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dump: smtp-sink's own headers (`X-Mail-Args`, `X-Rcpt-Args`, ...,
/// ending with its three-line `Received:`), the message, an empty line.
/// `None` while it is still being written.
fn parse_dump(text: &str) -> Option<Message> {
    if !text.ends_with("\n\n") {
        return None;
    }
    let mut mail_from = None;
    let mut rcpt_tos = Vec::new();
    let mut lines = text.split_inclusive('\n');
    let mut offset = 0;
    for line in lines.by_ref() {
        offset += line.len();
        if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            mail_from = Some(angle_address(v.trim(), ""));
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpt_tos.push(angle_address(v.trim(), ""));
        } else if line.starts_with("Received: ") {
            break;
        }
    }
    // The two continuation lines of smtp-sink's Received header.
    for line in lines.take(2) {
        offset += line.len();
    }
    let content = text.get(offset..text.len() - 1)?.to_owned();
    Some(Message {
        mail_from: mail_from?,
        rcpt_tos,
        content,
    })
}

/// `FROM:<a@b> SIZE=1` (with `prefix` "from:") gives `a@b`.
fn angle_address(arg: &str, prefix: &str) -> String {
    let rest = match arg.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            arg.get(prefix.len()..).unwrap_or_default()
        }
        _ => arg,
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('<').and_then(|r| r.split_once('>')) {
        Some((address, _)) => address.to_owned(),
        None => rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// True when this process runs as root (the owner of `/proc/self` is the
/// effective user).
pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Hands `message` (a file, LF or CRLF lines) to the SMTP server at `addr`
/// with Postfix's `smtp-source`, from the null sender to `rcpt`, as a
/// remote MTA returns a bounce. Returns smtp-source's complaint when the
/// server refused.
pub fn smtp_source(
    end: &MustReachEnd,
    addr: &str,
    rcpt: &str,
    message: &Path,
) -> Result<(), String> {
    let out = Command::new(postfix_program(end, "smtp-source"))
        .args(["-f", "", "-t", rcpt, "-M", "mx.remote.example", "-F"])
        .arg(message)
        .arg(addr)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_dump() {
        let dump = "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: h\n\
            X-Mail-Args: <b+t@bounces.test> SIZE=10\nX-Rcpt-Args: <a@example.org>\n\
            Received: from h ([127.0.0.1])\n\tby sink (smtp-sink) with ESMTP id 1;\n\tMon, 1 Jan 2024\n\
            Subject: x\n\n.dot\n\n";
        let m = parse_dump(dump).unwrap();
        assert_eq!(m.mail_from, "b+t@bounces.test");
        assert_eq!(m.rcpt_tos, vec!["a@example.org"]);
        assert_eq!(m.content, "Subject: x\n\n.dot\n");
        assert_eq!(parse_dump("X-Mail-Args: <a@b>\n"), None);
        assert_eq!(angle_address("FROM:<>", "from:"), "");
        assert_eq!(angle_address("TO:<x@y.test>", "to:"), "x@y.test");
    }
}

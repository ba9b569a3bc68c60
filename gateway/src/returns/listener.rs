//! The bounce intake listener (`listen.bounce`): a small SMTP server that
//! accepts mail for the bounce domain only, refuses oversize messages, and
//! hands each message to [`Returns`]. It answers 250 only once the facts are
//! durable; a store that cannot commit gets 451, so the sender retries.
//!
//! It is a public port (the bounce domain's MX), so it holds out against
//! what the public sends: STARTTLS when a certificate is configured (RFC
//! 3207), at most [`MAX_SESSIONS`] sessions of which [`MAX_MESSAGES`] may
//! be in DATA at once (the memory a message takes is bounded by the size
//! limit), and of those at most `SESSIONS_PER_PEER` and `MESSAGES_PER_PEER`
//! from one address, `MAX_RCPTS` recipients a message, a deadline for
//! every line (RFC 5321 4.5.3.2) and for a whole message, and no line held
//! beyond its limit however long it is. At shutdown every session is
//! answered 421 and closed.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tokio::{
    io::{
        AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
        BufReader,
    },
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{IntakeError, MAX_RETURNED_BYTES, Returns, per_peer::PerPeer};

/// Longest command line accepted (RFC 5321 says 512 with extensions).
const MAX_LINE: usize = 4096;
/// Longest line of a message (RFC 5321 says 1,000 with its CRLF); a longer
/// one makes the message too big.
const MAX_DATA_LINE: usize = 64 << 10;
/// Messages being received at once, each up to `MAX_RETURNED_BYTES`.
pub const MAX_MESSAGES: usize = 32;
/// Recipients of one message (RFC 5321 asks a server to take at least 100).
const MAX_RCPTS: usize = 100;
/// Sessions served at once; further connections wait in the kernel's backlog.
pub const MAX_SESSIONS: usize = 1024;
/// How long the listener waits for a client's next line, or for a reply to
/// be taken (RFC 5321 asks a server to wait at least 5 minutes).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(300);
/// Of those, what one client address may hold: a busy MTA's share, but not
/// all of it (one that trickles its messages a line every few minutes
/// would otherwise keep real bounces out).
const SESSIONS_PER_PEER: usize = 64;
const MESSAGES_PER_PEER: usize = 8;
/// How long one message's content may take to arrive, however steadily its
/// lines come (10 MiB at 20 KiB/s).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long sessions still running at shutdown may go on.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How sessions are served.
#[derive(Clone)]
pub struct Intake {
    /// Offered as STARTTLS when set.
    pub tls: Option<TlsAcceptor>,
    /// The deadline for each line the client sends (and the TLS handshake).
    pub line_timeout: Duration,
    /// The deadline for a message's content, from the 354.
    pub message_timeout: Duration,
    /// Room for the messages being received at once.
    pub messages: Arc<Semaphore>,
    /// Sessions and messages being received, per client address.
    sessions_of: PerPeer,
    messages_of: PerPeer,
}

impl Intake {
    pub fn new(tls: Option<TlsAcceptor>, line_timeout: Duration) -> Self {
        Self {
            tls,
            line_timeout,
            message_timeout: MESSAGE_TIMEOUT,
            messages: Arc::new(Semaphore::new(MAX_MESSAGES)),
            sessions_of: PerPeer::new(SESSIONS_PER_PEER),
            messages_of: PerPeer::new(MESSAGES_PER_PEER),
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    returns: Arc<Returns>,
    intake: Intake,
    shutdown: CancellationToken,
) {
    let sessions = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                let peer = peer.ip();
                let Some(held) = intake.sessions_of.take(peer) else {
                    sessions.spawn(async move {
                        let busy = b"421 4.7.0 too many sessions from your address\r\n";
                        let _ = say(&mut stream, busy, Duration::from_secs(5)).await;
                    });
                    continue;
                };
                let (returns, intake, stop) = (returns.clone(), intake.clone(), shutdown.clone());
                sessions.spawn(async move {
                    // Idle sessions are told 421 at shutdown; whatever is
                    // still running after the grace is cut off.
                    let cut = async {
                        stop.cancelled().await;
                        tokio::time::sleep(SHUTDOWN_GRACE).await;
                    };
                    tokio::select! {
                        served = session(stream, peer, &returns, &intake, &stop) => {
                            if let Err(e) = served {
                                tracing::debug!(error = %e, "bounce session ended");
                            }
                        }
                        () = cut => tracing::debug!("bounce session cut off at shutdown"),
                    }
                    drop((slot, held));
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "bounce listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    sessions.close();
    sessions.wait().await;
}

/// A session in the clear, then, if the client asks for STARTTLS, a new
/// one over TLS (RFC 3207: nothing said before carries over).
async fn session(
    stream: tokio::net::TcpStream,
    peer: IpAddr,
    returns: &Returns,
    intake: &Intake,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let Some(stream) = commands(stream, peer, returns, intake, false, shutdown).await? else {
        return Ok(());
    };
    let Some(tls) = &intake.tls else {
        return Ok(());
    };
    let secured = tokio::time::timeout(intake.line_timeout, tls.accept(stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    commands(secured, peer, returns, intake, true, shutdown)
        .await
        .map(drop)
}

/// Serves commands until QUIT or the end of the connection (`None`), or
/// until STARTTLS is agreed (`Some(stream)`, to be secured). Over TLS
/// (`secured`) there is no greeting (the client starts with EHLO) and no
/// STARTTLS.
async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: IpAddr,
    returns: &Returns,
    intake: &Intake,
    secured: bool,
    shutdown: &CancellationToken,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    let offer_tls = !secured && intake.tls.is_some();
    if !secured {
        say(
            io.get_mut(),
            b"220 sluice bounce intake ESMTP\r\n",
            intake.line_timeout,
        )
        .await?;
    }
    let domain = format!("@{}", returns.paths.domain());
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        let next = tokio::select! {
            next = read_line(&mut io, &mut line, MAX_LINE, intake.line_timeout) => next?,
            () = shutdown.cancelled() => return closing(io.get_mut()).await,
        };
        let Some(whole) = next else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            _ if !whole => "500 5.5.2 line too long\r\n".into(),
            "EHLO" => {
                let starttls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
                format!("250-sluice\r\n250-SIZE {MAX_RETURNED_BYTES}\r\n{starttls}250 8BITMIME\r\n")
            }
            "HELO" => "250 sluice\r\n".into(),
            "STARTTLS" if !offer_tls => "502 5.5.1 TLS not available\r\n".into(),
            "STARTTLS" if !io.buffer().is_empty() => {
                // Commands sent with STARTTLS would be taken as if they came
                // over TLS (a command injection): refuse, in the clear.
                "554 5.5.1 no commands may follow STARTTLS in the same packet\r\n".into()
            }
            "STARTTLS" => {
                say(
                    io.get_mut(),
                    b"220 2.0.0 ready to start TLS\r\n",
                    intake.line_timeout,
                )
                .await?;
                return Ok(Some(io.into_inner()));
            }
            "MAIL" => {
                rcpts.clear();
                "250 2.1.0 ok\r\n".into()
            }
            "RCPT" if rcpts.len() >= MAX_RCPTS => "452 4.5.3 too many recipients\r\n".into(),
            "RCPT" => {
                let address = angle_address(command);
                if address.to_ascii_lowercase().ends_with(&domain) {
                    rcpts.push(address);
                    "250 2.1.5 ok\r\n".into()
                } else {
                    "550 5.7.1 relaying denied: only mail for the bounce domain\r\n".into()
                }
            }
            "DATA" if rcpts.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
            "DATA" => {
                let room = intake.messages.clone().try_acquire_owned().ok();
                let Some(_room) = room.zip(intake.messages_of.take(peer)) else {
                    say(
                        io.get_mut(),
                        b"451 4.3.2 too many messages at once, try again later\r\n",
                        intake.line_timeout,
                    )
                    .await?;
                    continue;
                };
                say(
                    io.get_mut(),
                    b"354 end with <CRLF>.<CRLF>\r\n",
                    intake.line_timeout,
                )
                .await?;
                let reading = read_data(&mut io, intake.line_timeout);
                let data = tokio::select! {
                    data = tokio::time::timeout(intake.message_timeout, reading) => match data {
                        Ok(data) => data?,
                        // Mid-message: the session cannot go on in step.
                        Err(_) => {
                            let slow = b"451 4.4.2 message took too long, try again later\r\n";
                            say(io.get_mut(), slow, intake.line_timeout).await?;
                            return Ok(None);
                        }
                    },
                    () = shutdown.cancelled() => return closing(io.get_mut()).await,
                };
                let reply = match data {
                    None => "552 5.3.4 message too big\r\n".to_owned(),
                    Some(raw) => match returns.take(&raw, &rcpts).await {
                        Ok(_) => "250 2.0.0 thanks\r\n".to_owned(),
                        Err(IntakeError::TooLarge { .. }) => {
                            "552 5.3.4 message too big\r\n".to_owned()
                        }
                        Err(IntakeError::Store(e)) => {
                            tracing::error!(error = %e, "bounce not recorded");
                            "451 4.3.0 cannot record now, try again later\r\n".to_owned()
                        }
                    },
                };
                rcpts.clear();
                reply
            }
            "RSET" => {
                rcpts.clear();
                "250 2.0.0 ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                say(io.get_mut(), b"221 2.0.0 bye\r\n", intake.line_timeout).await?;
                return Ok(None);
            }
            _ => "502 5.5.2 command not implemented\r\n".into(),
        };
        say(io.get_mut(), reply.as_bytes(), intake.line_timeout).await?;
    }
}

/// Says the listener is going away (RFC 5321 3.8) and ends the session.
async fn closing<W: AsyncWrite + Unpin, S>(w: &mut W) -> std::io::Result<Option<S>> {
    say(
        w,
        b"421 4.3.2 shutting down, try again later\r\n",
        SHUTDOWN_GRACE,
    )
    .await?;
    Ok(None)
}

/// Writes a reply within `timeout`: a client that sends but never reads
/// cannot hold the session once its socket buffer is full.
async fn say<W: AsyncWrite + Unpin>(
    w: &mut W,
    reply: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let write = async {
        w.write_all(reply).await?;
        w.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads one line into `line` within `timeout`, keeping at most `max`
/// bytes of it: `Some(true)` for a whole line, `Some(false)` for one cut
/// at `max` (the rest is read and dropped), `None` at the end of the input.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
    timeout: Duration,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let read = async {
        let n = (&mut *reader)
            .take(max as u64)
            .read_until(b'\n', line)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if line.ends_with(b"\n") {
            return Ok(Some(true));
        }
        // Longer than `max`: drop the rest of it, never holding it.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = (&mut *reader)
                .take(max as u64)
                .read_until(b'\n', &mut rest)
                .await?;
            if n == 0 || rest.ends_with(b"\n") {
                return Ok(Some(false));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The address in `RCPT TO:<...>`.
fn angle_address(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(a), Some(b)) if a < b => command[a + 1..b].to_owned(),
        _ => command
            .split_once(':')
            .map(|(_, a)| a.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// Reads DATA up to the lone dot, undoing dot-stuffing; `None` if it grew
/// past the limit (the rest is read and dropped so the session stays in step).
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        match read_line(reader, &mut line, MAX_DATA_LINE, timeout).await? {
            None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Some(false) => {
                too_big = true;
                data = Vec::new();
                continue;
            }
            Some(true) => {}
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(data));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + content.len() > MAX_RETURNED_BYTES {
            too_big = true;
            data = Vec::new();
        } else if !too_big {
            data.extend_from_slice(content);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncWriteExt, BufReader, duplex},
        net::TcpStream,
    };

    use super::*;

    /// The listener on a loopback port, over a store of its own, with
    /// `intake`; where it listens.
    async fn listening(intake: Intake) -> (std::net::SocketAddr, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn store::Store> =
            Arc::new(store::embedded::Embedded::open(dir.path()).expect("open"));
        let retry = rules::RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let paths = crate::verp::ReturnPaths::new(b"k", "bounces.test");
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let returns = Arc::new(Returns::new(store, paths, retry, metrics));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, returns, intake, CancellationToken::new()));
        (addr, dir)
    }

    /// A client's session: each line sent, the reply's last line back.
    struct Client(BufReader<TcpStream>);

    impl Client {
        async fn connect(addr: std::net::SocketAddr) -> (Self, String) {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let mut client = Self(BufReader::new(stream));
            let greeting = client.reply().await;
            (client, greeting)
        }

        async fn reply(&mut self) -> String {
            let mut line = String::new();
            loop {
                line.clear();
                let read = self.0.read_line(&mut line);
                let n = tokio::time::timeout(Duration::from_secs(5), read).await;
                if n.expect("a reply within 5 s").expect("read") == 0 || line.get(3..4) != Some("-")
                {
                    return line;
                }
            }
        }

        async fn say(&mut self, line: &str) -> String {
            let line = format!("{line}\r\n");
            self.0
                .get_mut()
                .write_all(line.as_bytes())
                .await
                .expect("write");
            self.reply().await
        }

        /// Up to the DATA command's answer.
        async fn up_to_data(&mut self) -> String {
            self.say("EHLO mx.example").await;
            self.say("MAIL FROM:<>").await;
            self.say("RCPT TO:<b+x@bounces.test>").await;
            self.say("DATA").await
        }
    }

    /// One address cannot hold every message slot, nor every session: its
    /// share is `MESSAGES_PER_PEER` and `SESSIONS_PER_PEER`.
    #[tokio::test]
    async fn one_address_gets_its_share_of_the_message_slots_and_sessions() {
        let (addr, _dir) = listening(Intake::new(None, Duration::from_secs(5))).await;
        let mut held = Vec::new();
        for _ in 0..MESSAGES_PER_PEER {
            let (mut client, _) = Client::connect(addr).await;
            assert!(client.up_to_data().await.starts_with("354"));
            held.push(client);
        }
        let (mut one_more, _) = Client::connect(addr).await;
        let refused = one_more.up_to_data().await;
        assert!(refused.starts_with("451 4.3.2"), "{refused}");
        for _ in held.len() + 1..SESSIONS_PER_PEER {
            held.push(Client::connect(addr).await.0);
        }
        let (_, greeting) = Client::connect(addr).await;
        assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    }

    /// A message whose lines come steadily but never end is cut off at
    /// `message_timeout`: 451, and the session closed.
    #[tokio::test]
    async fn a_message_trickled_past_its_deadline_is_refused() {
        let intake = Intake {
            message_timeout: Duration::from_millis(300),
            ..Intake::new(None, Duration::from_secs(5))
        };
        let (addr, _dir) = listening(intake).await;
        let (mut client, _) = Client::connect(addr).await;
        assert!(client.up_to_data().await.starts_with("354"));
        let stream = client.0.get_mut();
        for _ in 0..10 {
            if stream.write_all(b"x\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply = client.reply().await;
        assert!(reply.starts_with("451 4.4.2"), "{reply}");
        assert_eq!(client.reply().await, "", "closed");
    }

    /// A line longer than the limit is cut, the rest of it dropped unheld,
    /// and the next line read whole. Before, a DATA line without a newline
    /// grew without bound.
    #[tokio::test]
    async fn an_overlong_line_is_cut_and_the_next_one_read_whole() {
        let (mut client, server) = duplex(1 << 16);
        let mut reader = BufReader::new(server);
        tokio::spawn(async move {
            client.write_all(&vec![b'x'; 100_000]).await.expect("write");
            client.write_all(b"\r\nNOOP\r\n").await.expect("write");
        });
        let mut line = Vec::new();
        let long = read_line(&mut reader, &mut line, 1000, Duration::from_secs(5)).await;
        assert_eq!(long.expect("read"), Some(false));
        assert!(line.len() <= 1000);
        let next = read_line(&mut reader, &mut line, 1000, Duration::from_secs(5)).await;
        assert_eq!(
            (next.expect("read"), line.as_slice()),
            (Some(true), &b"NOOP\r\n"[..])
        );
    }

    /// A client that stops sending is cut off at the line deadline.
    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (_client, server) = duplex(64);
        let mut reader = BufReader::new(server);
        let mut line = Vec::new();
        let silent = read_line(&mut reader, &mut line, 100, Duration::from_millis(50)).await;
        assert_eq!(
            silent.expect_err("timed out").kind(),
            std::io::ErrorKind::TimedOut
        );
    }

    /// A message with an endless line is refused as too big, and the
    /// session stays in step for the next command.
    #[tokio::test]
    async fn data_with_a_line_beyond_the_message_limit_is_too_big() {
        let (mut client, server) = duplex(1 << 16);
        let mut reader = BufReader::new(server);
        tokio::spawn(async move {
            client.write_all(b"Subject: x\r\n").await.expect("write");
            let chunk = vec![b'y'; 1 << 16];
            for _ in 0..(MAX_RETURNED_BYTES >> 16) + 2 {
                client.write_all(&chunk).await.expect("write");
            }
            client.write_all(b"\r\n.\r\nQUIT\r\n").await.expect("write");
        });
        let data = read_data(&mut reader, Duration::from_secs(30))
            .await
            .expect("read");
        assert_eq!(data, None);
        let mut line = Vec::new();
        let next = read_line(&mut reader, &mut line, MAX_LINE, Duration::from_secs(5)).await;
        assert_eq!(
            (next.expect("read"), line.as_slice()),
            (Some(true), &b"QUIT\r\n"[..])
        );
    }
}

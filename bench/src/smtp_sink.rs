//! A fast SMTP sink for measuring: answers everything positively, supports
//! PIPELINING and, unless started without, CHUNKING (`BDAT`, RFC 3030, as
//! Postfix, Exim and the large mailbox providers offer it), keeps a count
//! of messages and of their bytes received and, when asked, how many each
//! recipient got (to count duplicates).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};

/// Messages received per recipient address.
type PerRecipient = Arc<Mutex<HashMap<String, u32>>>;

pub struct SmtpSink {
    pub port: u16,
    /// Whether it offers CHUNKING.
    pub chunking: bool,
    counts: Arc<Counts>,
    per_recipient: Option<PerRecipient>,
}

/// What the sink has received, over every session.
#[derive(Default)]
struct Counts {
    messages: AtomicU64,
    /// Of the messages' content, as sent after `DATA` (dot-stuffed, the
    /// final dot left out) or in `BDAT` chunks.
    bytes: AtomicU64,
}

impl SmtpSink {
    /// Binds 127.0.0.1 on an ephemeral port and serves in the background,
    /// offering CHUNKING unless `BENCH_SMTP_CHUNKING=0` (to measure the
    /// same run with DATA only).
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(None, chunking_offered()).await
    }

    /// The same, also counting the messages of each recipient.
    pub async fn start_counting_recipients() -> std::io::Result<Self> {
        Self::serve(Some(PerRecipient::default()), chunking_offered()).await
    }

    async fn serve(per_recipient: Option<PerRecipient>, chunking: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let recipients = per_recipient.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = shared.clone();
                let recipients = recipients.clone();
                tokio::spawn(async move {
                    let _ = session(stream, &counts, recipients.as_ref(), chunking).await;
                });
            }
        });
        Ok(Self {
            port,
            chunking,
            counts,
            per_recipient,
        })
    }

    pub fn received(&self) -> u64 {
        self.counts.messages.load(Ordering::Relaxed)
    }

    /// Bytes of message content received, over every message.
    pub fn received_bytes(&self) -> u64 {
        self.counts.bytes.load(Ordering::Relaxed)
    }

    /// Messages per recipient (empty unless started counting them).
    pub fn per_recipient(&self) -> HashMap<String, u32> {
        self.per_recipient
            .as_ref()
            .map(|m| {
                m.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default()
    }
}

fn chunking_offered() -> bool {
    std::env::var("BENCH_SMTP_CHUNKING").as_deref() != Ok("0")
}

async fn session(
    stream: TcpStream,
    counts: &Counts,
    per_recipient: Option<&PerRecipient>,
    chunking: bool,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::new(write);
    writer.write_all(b"220 sink ESMTP\r\n").await?;
    writer.flush().await?;
    let mut line = Vec::with_capacity(1024);
    let mut in_data = false;
    let mut data_bytes = 0;
    let mut recipient = String::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let received = |data_bytes: &mut u64, recipient: &mut String| {
            counts.messages.fetch_add(1, Ordering::Relaxed);
            counts
                .bytes
                .fetch_add(std::mem::take(data_bytes), Ordering::Relaxed);
            if let Some(map) = per_recipient {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *map.entry(std::mem::take(recipient)).or_default() += 1;
            }
        };
        let reply: &[u8] = if in_data {
            if line != b".\r\n" {
                data_bytes += line.len() as u64;
                continue;
            }
            in_data = false;
            received(&mut data_bytes, &mut recipient);
            b"250 2.0.0 accepted\r\n"
        } else if let Some((size, last)) = bdat(&line) {
            let chunk =
                tokio::io::copy(&mut (&mut reader).take(size), &mut tokio::io::sink()).await?;
            if chunk < size {
                return Ok(());
            }
            data_bytes += size;
            if last {
                received(&mut data_bytes, &mut recipient);
                b"250 2.0.0 accepted\r\n"
            } else {
                b"250 2.0.0 chunk ok\r\n"
            }
        } else {
            let verb = line
                .get(..4)
                .map(<[u8]>::to_ascii_uppercase)
                .unwrap_or_default();
            if per_recipient.is_some() && verb == b"RCPT" {
                recipient = rcpt_address(&line);
            }
            match verb.as_slice() {
                b"EHLO" if chunking => {
                    b"250-sink\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
                }
                b"EHLO" => b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => b"250 2.0.0 ok\r\n",
                b"DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                b"QUIT" => {
                    writer.write_all(b"221 bye\r\n").await?;
                    return writer.flush().await;
                }
                _ => b"500 5.5.1 unknown command\r\n",
            }
        };
        writer.write_all(reply).await?;
        // Answer pipelined commands together: flush once the input is drained.
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

/// The size of a `BDAT size [LAST]` command's chunk, and whether it is the
/// message's last.
fn bdat(line: &[u8]) -> Option<(u64, bool)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("BDAT") {
        return None;
    }
    let size = words.next()?.parse().ok()?;
    Some((
        size,
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST")),
    ))
}

/// The address of `RCPT TO:<address>`.
fn rcpt_address(line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    match (line.find('<'), line.rfind('>')) {
        (Some(open), Some(close)) if open < close => line[open + 1..close].to_owned(),
        _ => String::new(),
    }
}

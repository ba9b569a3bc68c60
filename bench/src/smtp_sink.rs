//! A fast SMTP sink for measuring: answers everything positively, supports
//! PIPELINING, keeps a count of messages and of their bytes received and,
//! when asked, how many each recipient got (to count duplicates).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};

/// Messages received per recipient address.
type PerRecipient = Arc<Mutex<HashMap<String, u32>>>;

pub struct SmtpSink {
    pub port: u16,
    counts: Arc<Counts>,
    per_recipient: Option<PerRecipient>,
}

/// What the sink has received, over every session.
#[derive(Default)]
struct Counts {
    messages: AtomicU64,
    /// Of the messages' content, as sent after `DATA` (dot-stuffed, the
    /// final dot left out).
    bytes: AtomicU64,
}

impl SmtpSink {
    /// Binds 127.0.0.1 on an ephemeral port and serves in the background.
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(None).await
    }

    /// The same, also counting the messages of each recipient.
    pub async fn start_counting_recipients() -> std::io::Result<Self> {
        Self::serve(Some(PerRecipient::default())).await
    }

    async fn serve(per_recipient: Option<PerRecipient>) -> std::io::Result<Self> {
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
                    let _ = session(stream, &counts, recipients.as_ref()).await;
                });
            }
        });
        Ok(Self {
            port,
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

async fn session(
    stream: TcpStream,
    counts: &Counts,
    per_recipient: Option<&PerRecipient>,
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
        let reply: &[u8] = if in_data {
            if line != b".\r\n" {
                data_bytes += line.len() as u64;
                continue;
            }
            in_data = false;
            counts.messages.fetch_add(1, Ordering::Relaxed);
            counts
                .bytes
                .fetch_add(std::mem::take(&mut data_bytes), Ordering::Relaxed);
            if let Some(map) = per_recipient {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *map.entry(std::mem::take(&mut recipient)).or_default() += 1;
            }
            b"250 2.0.0 accepted\r\n"
        } else {
            let verb = line
                .get(..4)
                .map(<[u8]>::to_ascii_uppercase)
                .unwrap_or_default();
            if per_recipient.is_some() && verb == b"RCPT" {
                recipient = rcpt_address(&line);
            }
            match verb.as_slice() {
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

/// The address of `RCPT TO:<address>`.
fn rcpt_address(line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    match (line.find('<'), line.rfind('>')) {
        (Some(open), Some(close)) if open < close => line[open + 1..close].to_owned(),
        _ => String::new(),
    }
}

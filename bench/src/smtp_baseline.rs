//! The ceiling an e-mail benchmark compares sluice against: bare SMTP
//! sessions to the same sink, as many as sluice's relay connections, each
//! sending its share of messages one after the other (MAIL, RCPT and DATA
//! pipelined as RFC 2920 allows, then the content; or, where the sink
//! offers CHUNKING as sluice then uses it, MAIL, RCPT and `BDAT n LAST`
//! with the content in one write), with nothing behind
//! them: no store, no templates, no MIME building. Whatever sluice adds is
//! measured against this in the same run.

use std::time::{Duration, Instant};

use anyhow::ensure;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::TcpStream,
};

/// Sends `messages` of `content` (dot-stuffed, CRLF line ends) to the sink
/// at `port` over `connections` sessions, in `BDAT` chunks if `chunking`;
/// the time from the first connection to the last 250.
pub async fn bare_sessions(
    port: u16,
    connections: usize,
    messages: usize,
    content: &[u8],
    chunking: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let sessions: Vec<_> = (0..connections)
        .map(|i| {
            let share = messages / connections + usize::from(i < messages % connections);
            let content = content.to_vec();
            tokio::spawn(async move { session(port, share, &content, chunking).await })
        })
        .collect();
    for session in sessions {
        session.await??;
    }
    Ok(started.elapsed())
}

async fn session(port: u16, messages: usize, content: &[u8], chunking: bool) -> anyhow::Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut replies = Replies {
        reader: BufReader::new(read),
        line: String::new(),
    };
    let mut writer = BufWriter::new(write);
    replies.expect("220").await?;
    writer.write_all(b"EHLO baseline\r\n").await?;
    writer.flush().await?;
    replies.expect("250").await?;
    let chunk_commands = format!(
        "MAIL FROM:<offers@telco.example>\r\nRCPT TO:<u@example.org>\r\nBDAT {} LAST\r\n",
        content.len()
    );
    for _ in 0..messages {
        if chunking {
            writer.write_all(chunk_commands.as_bytes()).await?;
            writer.write_all(content).await?;
            writer.flush().await?;
            for _ in 0..3 {
                replies.expect("250").await?;
            }
            continue;
        }
        writer
            .write_all(b"MAIL FROM:<offers@telco.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
            .await?;
        writer.flush().await?;
        replies.expect("250").await?;
        replies.expect("250").await?;
        replies.expect("354").await?;
        writer.write_all(content).await?;
        writer.write_all(b".\r\n").await?;
        writer.flush().await?;
        replies.expect("250").await?;
    }
    writer.write_all(b"QUIT\r\n").await?;
    writer.flush().await?;
    Ok(())
}

/// A session's replies, read one whole (perhaps multi-line) reply at a time.
struct Replies {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: String,
}

impl Replies {
    async fn expect(&mut self, code: &str) -> anyhow::Result<()> {
        loop {
            self.line.clear();
            let read = self.reader.read_line(&mut self.line).await?;
            ensure!(read > 0, "the sink closed the session waiting for {code}");
            let line = self.line.trim_end();
            ensure!(
                line.starts_with(code),
                "the sink answered `{line}` where {code} was due"
            );
            // `250-` goes on; `250 ` is the reply's last line.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}

/// Content of `bytes` bytes (a few headers' worth at least, up to two more
/// to end the last line) in lines of at most 78, as a campaign's message of
/// that size is sent.
pub fn content_of(bytes: usize) -> Vec<u8> {
    let mut content = b"From: Offers <offers@telco.example>\r\nTo: u@example.org\r\nSubject: go unlimited\r\n\r\n".to_vec();
    while content.len() < bytes {
        let line = (bytes - content.len()).clamp(3, 78) - 2;
        content.extend(std::iter::repeat_n(b'x', line));
        content.extend_from_slice(b"\r\n");
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_has_the_size_asked_in_crlf_lines() {
        let content = content_of(1500);
        assert_eq!(content.len(), 1500);
        assert!(content.ends_with(b"\r\n"));
        assert!(content.split(|&b| b == b'\n').all(|l| l.len() <= 78));
    }
}

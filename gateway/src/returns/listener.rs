//! The bounce intake listener (`listen.bounce`): a small SMTP server that
//! accepts mail for the bounce domain only, refuses oversize messages, and
//! hands each message to [`Returns`]. It answers 250 only once the facts are
//! durable; a store that cannot commit gets 451, so the sender retries.

use std::sync::Arc;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{IntakeError, MAX_RETURNED_BYTES, Returns};

/// Longest command line accepted (RFC 5321 says 512 with extensions).
const MAX_LINE: usize = 4096;

pub async fn serve(listener: TcpListener, returns: Arc<Returns>, shutdown: CancellationToken) {
    let sessions = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let returns = returns.clone();
                sessions.spawn(async move {
                    if let Err(e) = session(stream, &returns).await {
                        tracing::debug!(error = %e, "bounce session ended");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "bounce listener accept failed"),
        }
    }
    sessions.close();
    sessions.wait().await;
}

async fn session(stream: TcpStream, returns: &Returns) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"220 sluice bounce intake ESMTP\r\n")
        .await?;
    let domain = format!("@{}", returns.paths.domain());
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => format!("250-sluice\r\n250-SIZE {MAX_RETURNED_BYTES}\r\n250 8BITMIME\r\n"),
            "HELO" => "250 sluice\r\n".into(),
            "MAIL" => {
                rcpts.clear();
                "250 2.1.0 ok\r\n".into()
            }
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
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let reply = match read_data(&mut reader).await? {
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
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
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
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(data));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + content.len() > MAX_RETURNED_BYTES {
            too_big = true;
            data.clear();
        } else if !too_big {
            data.extend_from_slice(content);
        }
    }
}

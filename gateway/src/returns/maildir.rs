//! The Maildir watcher, for operators whose bounces land in a mailbox: each
//! message delivered to `new/` is taken like one received by the bounce
//! listener, then moved to `cur/` marked seen. A message the store cannot
//! record now stays in `new/` for the next scan, so nothing is lost.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{IntakeError, MAX_RETURNED_BYTES, Returns};

/// How often `new/` is looked at.
const SCAN_EVERY: Duration = Duration::from_secs(1);

pub struct Maildir {
    root: PathBuf,
    returns: Arc<Returns>,
}

impl Maildir {
    pub fn new(root: &Path, returns: Arc<Returns>) -> Self {
        Self {
            root: root.to_owned(),
            returns,
        }
    }

    /// Scans until shutdown.
    pub async fn watch(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.scan().await {
                tracing::warn!(maildir = %self.root.display(), error = %e, "bounce maildir scan failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(SCAN_EVERY) => {}
            }
        }
    }

    /// Takes every message in `new/`; returns how many were moved to `cur/`.
    pub async fn scan(&self) -> std::io::Result<usize> {
        let mut taken = 0;
        let mut entries = tokio::fs::read_dir(self.root.join("new")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().await?.is_file() {
                continue;
            }
            let size = entry.metadata().await?.len();
            let flag = if size > MAX_RETURNED_BYTES as u64 {
                tracing::warn!(file = %path.display(), size, "returned message too big; moved aside unread");
                "T"
            } else {
                let raw = tokio::fs::read(&path).await?;
                match self.returns.take(&raw, &[]).await {
                    Ok(_) => "S",
                    Err(IntakeError::TooLarge { .. }) => "T",
                    // Not recorded: leave it for the next scan.
                    Err(IntakeError::Store(e)) => {
                        tracing::error!(file = %path.display(), error = %e, "bounce not recorded; will retry");
                        continue;
                    }
                }
            };
            let seen = self.root.join("cur").join(format!("{name}:2,{flag}"));
            tokio::fs::rename(&path, &seen).await?;
            taken += 1;
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use domain::{CampaignDecl, ChannelKind, FactKind, Outcome, Participant, Update};
    use rules::RetryPolicy;
    use store::{Store, embedded::Embedded};

    use super::*;
    use crate::{metrics::Metrics, verp::ReturnPaths};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounces_in_new_are_recorded_and_moved_to_cur() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(Embedded::open(&dir.path().join("data")).expect("store"));
        let decl: CampaignDecl =
            serde_json::from_value(serde_json::json!({"channel": "email", "name": "m"}))
                .expect("decl");
        store.put_campaign("m", decl).await.expect("declare");
        let p = Participant {
            customer: "c1".into(),
            address: "c1@example.org".into(),
            segment: None,
            fields: Default::default(),
        };
        store.add_participants("m", vec![p], 1).await.expect("add");
        let seq = store
            .campaign("m")
            .await
            .expect("store answers")
            .expect("campaign")
            .seq;
        let claim = store
            .claim(seq, 10, 1, 1000)
            .await
            .expect("claim")
            .remove(0);
        let submitted = Outcome::Submitted {
            detail: Default::default(),
            upstream: None,
        };
        store
            .record(vec![Update {
                msg: claim.msg,
                at: 20,
                outcome: submitted,
            }])
            .await
            .expect("record");

        let paths = ReturnPaths::new(b"k", "bounces.test");
        let retry = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let returns = Arc::new(Returns::new(
            store.clone(),
            paths.clone(),
            retry,
            Arc::new(Metrics::default()),
        ));
        let maildir = dir.path().join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("mkdir");
        }
        let dsn = format!(
            "Delivered-To: {}\r\nFrom: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; c1@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n",
            paths.address(claim.msg)
        );
        std::fs::write(maildir.join("new").join("1700000000.M1.host"), dsn).expect("write");
        std::fs::write(
            maildir.join("new").join("1700000001.M2.host"),
            "Subject: hello\r\n\r\nnot a bounce\r\n",
        )
        .expect("write");

        let watcher = Maildir::new(&maildir, returns);
        assert_eq!(watcher.scan().await.expect("scan"), 2);
        assert!(maildir.join("cur").join("1700000000.M1.host:2,S").exists());
        assert_eq!(
            std::fs::read_dir(maildir.join("new")).expect("new").count(),
            0
        );
        let facts = store.events(0, 10).await.expect("events");
        let bounced = facts
            .iter()
            .find(|e| e.kind == FactKind::Bounced)
            .expect("bounced fact");
        assert_eq!(bounced.detail.bounce.as_deref(), Some("hard"));
        assert!(
            store
                .suppressed(ChannelKind::Email, "c1@example.org")
                .await
                .expect("store answers")
                .is_some()
        );
        assert_eq!(watcher.scan().await.expect("scan"), 0, "nothing twice");
    }
}

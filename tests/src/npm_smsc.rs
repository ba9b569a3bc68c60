//! An SMSC not written by us: `peers/npm_smsc/server.js` on the npm `smpp`
//! package (node-smpp 0.5.1), for interoperability tests.
//!
//! The script prints one JSON object per line on stdout (`listening`,
//! `bind`, `submit`, `receipt`, `deliver_sm_resp`); [`NpmSmsc`] collects
//! them. Without `node`, or without its `node_modules` (`cargo xtask peers`
//! installs both), starting the peer fails the test, naming the command that
//! installs what is missing ([`crate::peers`]).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    MustReachEnd,
    peers::{node_with_smpp, npm_smsc_dir},
};

/// Which receipts the peer sends (`--receipts=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NpmReceipts {
    /// `receipted_message_id` + `message_state` TLVs, empty text.
    Tlv,
    /// The classic `id:.. stat:DELIVRD ..` text only.
    Text,
    /// Both.
    #[default]
    Both,
}

impl NpmReceipts {
    fn arg(self) -> &'static str {
        match self {
            Self::Tlv => "--receipts=tlv",
            Self::Text => "--receipts=text",
            Self::Both => "--receipts=both",
        }
    }
}

/// One `submit_sm` as the npm peer logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmSubmit {
    pub source_addr: String,
    pub destination_addr: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// Exactly the `short_message` octets.
    pub short_message: Vec<u8>,
    /// The `message_payload` TLV octets, if any.
    pub message_payload: Option<Vec<u8>>,
    /// The id it answered ("1", "2", ...).
    pub message_id: String,
    /// When it arrived, on the peer's clock (ms since the Unix epoch).
    pub at_ms: u64,
}

/// One receipt the npm peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmReceipt {
    pub message_id: String,
    pub destination_addr: String,
    pub sequence_number: u32,
}

#[derive(Default)]
struct Log {
    events: Vec<serde_json::Value>,
    ended: bool,
}

/// The running peer; killed on drop.
pub struct NpmSmsc {
    child: Child,
    pub port: u16,
    log: Arc<(Mutex<Log>, Condvar)>,
}

impl NpmSmsc {
    /// Starts the peer with receipts as TLVs and text and no password check
    /// (fails the test without node).
    pub fn start(end: &MustReachEnd) -> Self {
        Self::start_with(end, NpmReceipts::Both, None)
    }

    /// Starts the peer; with `password`, binds with another one are answered
    /// ESME_RINVPASWD.
    pub fn start_with(end: &MustReachEnd, receipts: NpmReceipts, password: Option<&str>) -> Self {
        let mut command = node_with_smpp(end);
        command
            .arg(npm_smsc_dir().join("server.js"))
            .arg("0")
            .arg(receipts.arg())
            .env_remove("NPM_SMSC_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(password) = password {
            command.env("NPM_SMSC_PASSWORD", password);
        }
        let mut child = command
            .spawn()
            .expect("spawn node tests/peers/npm_smsc/server.js");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let reader = BufReader::new(stdout);
                for line in reader.lines() {
                    let Ok(line) = line else { break };
                    let event = serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({ "unparsed": line }));
                    let (state, changed) = &*log;
                    state
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .events
                        .push(event);
                    changed.notify_all();
                }
                let (state, changed) = &*log;
                state.lock().unwrap_or_else(PoisonError::into_inner).ended = true;
                changed.notify_all();
            });
        }
        let mut peer = Self {
            child,
            port: 0,
            log,
        };
        let listening = peer.wait_until("{\"listening\":PORT}", Duration::from_secs(10), |e| {
            e.iter().find_map(|v| v["listening"].as_u64())
        });
        peer.port = u16::try_from(listening).expect("a port");
        peer
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every JSON line printed so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lock().events.clone()
    }

    pub fn binds(&self) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter_map(|v| v.get("bind").cloned())
            .collect()
    }

    pub fn submits(&self) -> Vec<NpmSubmit> {
        submits(&self.lock().events)
    }

    pub fn receipts(&self) -> Vec<NpmReceipt> {
        self.lock()
            .events
            .iter()
            .filter_map(|v| v.get("receipt"))
            .map(|r| NpmReceipt {
                message_id: r["message_id"].as_str().expect("message_id").to_owned(),
                destination_addr: r["destination_addr"]
                    .as_str()
                    .expect("destination_addr")
                    .to_owned(),
                sequence_number: number(&r["sequence_number"]),
            })
            .collect()
    }

    /// `(sequence_number, command_status)` of each `deliver_sm_resp` received.
    pub fn deliver_sm_resps(&self) -> Vec<(u32, u32)> {
        self.lock()
            .events
            .iter()
            .filter_map(|v| v.get("deliver_sm_resp"))
            .map(|r| (number(&r["sequence_number"]), number(&r["command_status"])))
            .collect()
    }

    /// Waits for at least `count` submits and returns them all.
    pub fn wait_for_submits(&self, count: usize, timeout: Duration) -> Vec<NpmSubmit> {
        self.wait_until(&format!("{count} submit_sm"), timeout, |events| {
            let all = submits(events);
            (all.len() >= count).then_some(all)
        })
    }

    /// Waits for at least `count` `deliver_sm_resp`s and returns them all.
    pub fn wait_for_deliver_sm_resps(&self, count: usize, timeout: Duration) -> Vec<(u32, u32)> {
        self.wait_until(&format!("{count} deliver_sm_resp"), timeout, |events| {
            let n = events
                .iter()
                .filter(|v| v.get("deliver_sm_resp").is_some())
                .count();
            (n >= count).then_some(())
        });
        self.deliver_sm_resps()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `found` returns something for the events, or panics.
    fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&[serde_json::Value]) -> Option<T>,
    ) -> T {
        let (state, changed) = &*self.log;
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(t) = found(&guard.events) {
                return t;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !guard.ended && !left.is_zero(),
                "npm smsc: no {what} within {timeout:?} (ended: {}); it printed: {:?}",
                guard.ended,
                guard.events
            );
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for NpmSmsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn number(v: &serde_json::Value) -> u32 {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| panic!("npm smsc: {v} is not a u32"))
}

fn submits(events: &[serde_json::Value]) -> Vec<NpmSubmit> {
    let octets = |v: &serde_json::Value| {
        hex::decode(v.as_str().unwrap_or_default()).expect("npm smsc logs hex")
    };
    events
        .iter()
        .filter_map(|v| v.get("submit"))
        .map(|s| NpmSubmit {
            source_addr: s["source_addr"].as_str().unwrap_or_default().to_owned(),
            destination_addr: s["destination_addr"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            data_coding: number(&s["data_coding"]) as u8,
            esm_class: number(&s["esm_class"]) as u8,
            registered_delivery: number(&s["registered_delivery"]) as u8,
            short_message: octets(&s["short_message_hex"]),
            message_payload: (!s["message_payload_hex"].is_null())
                .then(|| octets(&s["message_payload_hex"])),
            message_id: s["message_id"].as_str().unwrap_or_default().to_owned(),
            at_ms: s["at_ms"].as_u64().unwrap_or_default(),
        })
        .collect()
}

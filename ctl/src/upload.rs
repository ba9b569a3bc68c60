//! `sluicectl upload`: a CSV or NDJSON file sent as NDJSON in requests of
//! [`CHUNK`] participants, each all or nothing on the server, with a
//! progress bar. Without `--skip-bad` a dry run checks every line first and
//! a file with a bad line uploads nothing.

use std::{
    fs::File,
    io::{BufRead, BufReader, IsTerminal, Write},
    path::Path,
};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::client::{CallError, Client, encode};

/// Participants per request: large enough for the server's group commits,
/// small enough that a retry after a failure resends little.
const CHUNK: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// CSV for a `.csv` file, else NDJSON.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::Ndjson,
        }
    }
}

/// What an upload (or its dry run) took, with each refused line by its
/// number in the file.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<(u64, String)>,
    /// Refused lines, also those the server counted but did not list.
    pub rejected_total: u64,
}

impl Summary {
    pub fn to_json(&self, stored: bool) -> Value {
        let rejected: Vec<Value> = self
            .rejected
            .iter()
            .map(|(line, error)| json!({"line": line, "error": error}))
            .collect();
        json!({"stored": stored, "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": rejected, "rejected_total": self.rejected_total})
    }

    fn reject(&mut self, line: u64, error: String) {
        self.rejected.push((line, error));
        self.rejected_total += 1;
    }
}

/// Uploads `path` to `campaign`; whether it stored anything, and what.
pub async fn upload(
    client: &Client,
    campaign: &str,
    path: &Path,
    format: Format,
    skip_bad: bool,
) -> Result<(bool, Summary), CallError> {
    if !skip_bad {
        let checked = send(client, campaign, path, format, true).await?;
        if checked.rejected_total > 0 {
            return Ok((false, checked));
        }
    }
    Ok((true, send(client, campaign, path, format, false).await?))
}

/// One pass over the file: every chunk sent, the answers summed.
async fn send(
    client: &Client,
    campaign: &str,
    path: &Path,
    format: Format,
    dry_run: bool,
) -> Result<Summary, CallError> {
    let unreadable =
        |e: &dyn std::fmt::Display| CallError::Usage(format!("{}: {e}", path.display()));
    let open = || {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| unreadable(&e))
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut chunks = Chunks::new(open()?, open()?, format).map_err(|e| unreadable(&e))?;
    let mut progress = Progress::new(if dry_run { "checking" } else { "uploading" }, size);
    let mut summary = Summary::default();
    let url = format!(
        "/v1/campaigns/{}/participants?dry_run={dry_run}",
        encode(campaign)
    );
    while let Some(chunk) = chunks
        .next_chunk(&mut summary)
        .map_err(|e| unreadable(&e))?
    {
        if !chunk.lines.is_empty() {
            let answer = client
                .post(
                    &url,
                    Some(("application/x-ndjson", Bytes::from(chunk.body))),
                )
                .await?;
            merge(&mut summary, &answer, &chunk.lines);
        }
        progress.at(chunks.bytes_read);
    }
    progress.done();
    summary.rejected.sort_by_key(|(line, _)| *line);
    Ok(summary)
}

/// Adds one request's answer, its line numbers mapped to the file's.
fn merge(summary: &mut Summary, answer: &Value, lines: &[u64]) {
    let count = |key: &str| answer.get(key).and_then(Value::as_u64).unwrap_or(0);
    summary.accepted += count("accepted");
    summary.duplicates += count("duplicates");
    let listed = answer.get("rejected").and_then(Value::as_array);
    for rejection in listed.into_iter().flatten() {
        let sent_line = rejection.get("line").and_then(Value::as_u64).unwrap_or(0);
        let line = usize::try_from(sent_line)
            .ok()
            .and_then(|n| lines.get(n.checked_sub(1)?))
            .copied()
            .unwrap_or(0);
        let error = rejection
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default();
        summary.rejected.push((line, error.to_owned()));
    }
    summary.rejected_total += count("rejected_total").max(listed.map_or(0, |l| l.len() as u64));
}

/// One request's body: NDJSON lines, and the file line each came from.
struct Chunk {
    body: Vec<u8>,
    lines: Vec<u64>,
}

/// The file read a chunk at a time; lines that cannot become a
/// participant line (CSV with the wrong number of columns, text that is not
/// UTF-8) are refused here, by their number in the file.
struct Chunks<R: BufRead> {
    source: Source<R>,
    bytes_read: u64,
}

enum Source<R: BufRead> {
    Ndjson {
        reader: R,
        line: u64,
    },
    Csv {
        reader: csv::Reader<R>,
        header: Vec<String>,
        lines: LineCounter<R>,
    },
}

impl<R: BufRead> Chunks<R> {
    /// `reader` and `again` read the same bytes: a CSV record's line is
    /// counted on the second (the csv crate does not count blank lines).
    fn new(reader: R, again: R, format: Format) -> Result<Self, csv::Error> {
        let source = match format {
            Format::Ndjson => Source::Ndjson { reader, line: 0 },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
                let header = reader.headers()?.iter().map(str::to_owned).collect();
                let lines = LineCounter {
                    reader: again,
                    at: 0,
                    line: 1,
                };
                Source::Csv {
                    reader,
                    header,
                    lines,
                }
            }
        };
        Ok(Self {
            source,
            bytes_read: 0,
        })
    }

    /// The next chunk, `None` at the end of the file.
    fn next_chunk(&mut self, summary: &mut Summary) -> std::io::Result<Option<Chunk>> {
        let mut chunk = Chunk {
            body: Vec::new(),
            lines: Vec::new(),
        };
        let mut ended = false;
        while chunk.lines.len() < CHUNK && !ended {
            ended = match &mut self.source {
                Source::Ndjson { reader, line } => {
                    next_ndjson(reader, line, &mut self.bytes_read, &mut chunk, summary)?
                }
                Source::Csv {
                    reader,
                    header,
                    lines,
                } => {
                    let ended = next_csv(reader, header, lines, &mut chunk, summary)?;
                    self.bytes_read = reader.position().byte();
                    ended
                }
            };
        }
        if ended && chunk.lines.is_empty() {
            return Ok(None);
        }
        Ok(Some(chunk))
    }
}

/// Reads one NDJSON line into `chunk`; whether the file ended.
fn next_ndjson(
    reader: &mut impl BufRead,
    line: &mut u64,
    bytes_read: &mut u64,
    chunk: &mut Chunk,
    summary: &mut Summary,
) -> std::io::Result<bool> {
    let mut bytes = Vec::new();
    let n = reader.read_until(b'\n', &mut bytes)?;
    if n == 0 {
        return Ok(true);
    }
    *bytes_read += n as u64;
    *line += 1;
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Ok(false);
    }
    if std::str::from_utf8(text).is_err() {
        summary.reject(*line, "not UTF-8 text".to_owned());
        return Ok(false);
    }
    chunk.body.extend_from_slice(text);
    chunk.body.push(b'\n');
    chunk.lines.push(*line);
    Ok(false)
}

/// Reads one CSV record into `chunk` as a participant: columns `customer`,
/// `address` and `segment`, every other column a field; whether the file
/// ended.
fn next_csv<R: BufRead>(
    reader: &mut csv::Reader<R>,
    header: &[String],
    lines: &mut LineCounter<R>,
    chunk: &mut Chunk,
    summary: &mut Summary,
) -> std::io::Result<bool> {
    let mut record = csv::StringRecord::new();
    let read = reader.read_record(&mut record);
    let start = match &read {
        Err(e) => e.position().map(csv::Position::byte),
        Ok(_) => record.position().map(csv::Position::byte),
    };
    let line = lines.line_at(start.unwrap_or_else(|| reader.position().byte()))?;
    match read {
        Ok(false) => return Ok(true),
        Ok(true) => {}
        Err(e) => {
            summary.reject(line, format!("CSV: {e}"));
            return Ok(false);
        }
    }
    if record.iter().all(str::is_empty) {
        return Ok(false);
    }
    if record.len() != header.len() {
        summary.reject(
            line,
            format!(
                "{} columns where the header has {}",
                record.len(),
                header.len()
            ),
        );
        return Ok(false);
    }
    let mut participant = Map::new();
    let mut fields = Map::new();
    for (name, value) in header.iter().zip(record.iter()) {
        match name.as_str() {
            "customer" | "address" => {
                participant.insert(name.clone(), json!(value));
            }
            "segment" if !value.is_empty() => {
                participant.insert(name.clone(), json!(value));
            }
            "segment" => {}
            _ => {
                fields.insert(name.clone(), json!(value));
            }
        }
    }
    if !fields.is_empty() {
        participant.insert("fields".into(), Value::Object(fields));
    }
    serde_json::to_writer(&mut chunk.body, &participant)?;
    chunk.body.push(b'\n');
    chunk.lines.push(line);
    Ok(false)
}

/// Line numbers of byte offsets, counted on a second reader of the file
/// as the offsets grow.
struct LineCounter<R: BufRead> {
    reader: R,
    /// Bytes counted so far, and the line the next one is on.
    at: u64,
    line: u64,
}

impl<R: BufRead> LineCounter<R> {
    /// The line of the first byte at or after `offset` that is not a blank
    /// line (offsets asked never go back).
    fn line_at(&mut self, offset: u64) -> std::io::Result<u64> {
        while self.at < offset {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let wanted = usize::try_from(offset - self.at).unwrap_or(usize::MAX);
            let taken = &buffer[..buffer.len().min(wanted)];
            self.line += taken.iter().filter(|&&b| b == b'\n').count() as u64;
            let n = taken.len();
            self.reader.consume(n);
            self.at += n as u64;
        }
        // A record's position is where the csv crate started reading it,
        // before the blank lines it skips.
        loop {
            let buffer = self.reader.fill_buf()?;
            let (taken, lines) = match buffer {
                [b'\n', ..] => (1, 1),
                [b'\r', b'\n', ..] => (2, 1),
                // A `\r` ending the buffer: its `\n`, if any, is in the next.
                [b'\r'] => (1, 0),
                _ => break,
            };
            self.reader.consume(taken);
            self.at += taken as u64;
            self.line += lines;
        }
        Ok(self.line)
    }
}

/// A progress bar on stderr, when stderr is a terminal.
struct Progress {
    label: &'static str,
    size: u64,
    shown: bool,
}

impl Progress {
    fn new(label: &'static str, size: u64) -> Self {
        Self {
            label,
            size,
            shown: std::io::stderr().is_terminal(),
        }
    }

    fn at(&mut self, bytes: u64) {
        if !self.shown || self.size == 0 {
            return;
        }
        let share = (bytes as f64 / self.size as f64).min(1.0);
        let filled = (share * 30.0) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled));
        let _ = write!(
            std::io::stderr(),
            "\r{} [{bar}] {:>3.0}%",
            self.label,
            share * 100.0
        );
    }

    fn done(&mut self) {
        if self.shown {
            self.at(self.size);
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, format: Format) -> (Vec<Value>, Vec<u64>, Summary) {
        let mut chunks = Chunks::new(text.as_bytes(), text.as_bytes(), format).expect("header");
        let mut summary = Summary::default();
        let (mut rows, mut lines) = (Vec::new(), Vec::new());
        while let Some(chunk) = chunks.next_chunk(&mut summary).expect("read") {
            for row in chunk.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                rows.push(serde_json::from_slice(row).expect("JSON"));
            }
            lines.extend(chunk.lines);
        }
        (rows, lines, summary)
    }

    #[test]
    fn csv_rows_become_participants_and_bad_rows_are_refused_by_file_line() {
        let csv = "customer,address,segment,name\nc1,ann@x.org,gold,Ann\n\nc2,bob@x.org,,\"Bob,\nJr\"\nc3,only-two\n";
        let (rows, lines, summary) = read_all(csv, Format::Csv);
        assert_eq!(
            rows,
            [
                json!({"customer": "c1", "address": "ann@x.org", "segment": "gold", "fields": {"name": "Ann"}}),
                json!({"customer": "c2", "address": "bob@x.org", "fields": {"name": "Bob,\nJr"}}),
            ]
        );
        assert_eq!(lines, [2, 4]);
        assert_eq!(
            summary.rejected,
            [(6, "2 columns where the header has 4".to_owned())],
            "a quoted line break counts"
        );
    }

    #[test]
    fn a_crlf_blank_line_split_across_buffers_still_counts() {
        let head = "customer,address\r\nc1,a@x.org\r\n";
        // Pad the first record so that the blank line's `\r` ends a buffer.
        let pad = 8192 - head.len() - 1;
        let csv = format!(
            "customer,address\r\nc1,{}a@x.org\r\n\r\nc2,b@x.org\r\n",
            "x".repeat(pad)
        );
        let reader = |text: &'static str| BufReader::with_capacity(8192, text.as_bytes());
        let csv: &'static str = Box::leak(csv.into_boxed_str());
        let mut chunks = Chunks::new(reader(csv), reader(csv), Format::Csv).expect("header");
        let mut summary = Summary::default();
        let chunk = chunks
            .next_chunk(&mut summary)
            .expect("read")
            .expect("rows");
        assert_eq!(chunk.lines, [2, 4]);
    }

    #[test]
    fn ndjson_lines_keep_their_file_numbers_and_blank_lines_are_skipped() {
        let ndjson = "{\"customer\":\"c1\",\"address\":\"a@x.org\"}\n\n{\"customer\":\"c2\",\"address\":\"b@x.org\"}";
        let (rows, lines, summary) = read_all(ndjson, Format::Ndjson);
        assert_eq!(rows.len(), 2);
        assert_eq!(lines, [1, 3]);
        assert_eq!(summary, Summary::default());
    }

    #[test]
    fn the_servers_line_numbers_are_mapped_to_the_files() {
        let mut summary = Summary::default();
        let answer = json!({"accepted": 1, "duplicates": 1, "rejected_total": 1,
            "rejected": [{"line": 2, "error": "address `x` is not an e-mail address"}]});
        merge(&mut summary, &answer, &[3, 7, 9]);
        assert_eq!(
            summary,
            Summary {
                accepted: 1,
                duplicates: 1,
                rejected: vec![(7, "address `x` is not an e-mail address".to_owned())],
                rejected_total: 1,
            }
        );
    }
}

//! The process's own metrics under their conventional names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc/self` at each scrape. Elsewhere than Linux, or where
//! `/proc` is not mounted, the ones it cannot read are left out.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

/// Clock ticks per second of `/proc/self/stat`: `USER_HZ`, 100 on every
/// Linux architecture the daemon is built for.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub struct Process {
    started: f64,
}

impl Default for Process {
    fn default() -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self { started }
    }
}

/// User plus system CPU seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: the fields after it follow `) `.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident memory in bytes, from `VmRSS` in `/proc/self/status`.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn open_fds() -> Option<i64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    i64::try_from(entries.count()).ok()
}

fn max_fds() -> Option<i64> {
    let (soft, _) = rlimit::Resource::NOFILE.get().ok()?;
    Some(i64::try_from(soft).unwrap_or(i64::MAX))
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = cpu_seconds() {
            let metric = ConstCounter::new(seconds);
            let e = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time the daemon has used",
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory of the daemon",
                Some(Unit::Bytes),
                resident_bytes().map(|b| b as f64),
            ),
            (
                "process_open_fds",
                "File descriptors the daemon has open",
                None,
                open_fds().map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "The daemon's limit of open file descriptors",
                None,
                max_fds().map(|n| n as f64),
            ),
            (
                "process_start_time",
                "When the daemon started, in seconds since the Unix epoch",
                Some(Unit::Seconds),
                Some(self.started),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?;
            metric.encode(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(resident_bytes().is_some_and(|b| b > 1 << 20));
        assert!(open_fds().is_some_and(|n| n >= 3));
        assert!(max_fds().is_some_and(|n| n >= 3));
    }
}

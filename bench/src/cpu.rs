//! CPU time from `/proc` (Linux; `None` elsewhere). On a shared machine a
//! rate per CPU-second is steadier than a rate per wall second: other
//! processes taking the cores away do not count.

/// CPU time of the calling thread, in seconds, from the scheduler's own
/// count (nanoseconds; `stat`'s clock ticks are 10 ms).
pub fn thread_seconds() -> Option<f64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 / 1e9)
}

/// CPU time (user + system) of the whole process, every thread, in seconds.
pub fn process_seconds() -> Option<f64> {
    seconds_from("/proc/self/stat")
}

fn seconds_from(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The process's CPU time since `before` (a [`process_seconds`]), in
/// microseconds per message of `messages`; NaN where it cannot be read.
pub fn micros_per_message_since(before: Option<f64>, messages: usize) -> f64 {
    match (before, process_seconds()) {
        (Some(before), Some(now)) => (now - before) * 1e6 / messages as f64,
        _ => f64::NAN,
    }
}

//! Load generators, sinks and benchmarks for sluice. Each `src/bin/bench_*`
//! prints its figures (as ratios to a same-run baseline where one exists);
//! `BENCHMARKS.md` at the root records them with the command that made them.

pub mod http;
pub mod sms_baseline;
pub mod smsc_sink;
pub mod smtp_sink;

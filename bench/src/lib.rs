//! sluice benchmarks (filled below).

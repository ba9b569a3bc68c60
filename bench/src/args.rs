//! The benchmarks' positional command-line arguments, each optional with a
//! default: `bench_x [N] [WINDOW]`.

use std::str::FromStr;

use anyhow::Context;

/// Argument `position` (1 is the first after the program), parsed, or
/// `default` when absent; an argument that does not parse is an error
/// naming it.
pub fn positional<T>(position: usize, name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    std::env::args()
        .nth(position)
        .map(|s| s.parse())
        .transpose()
        .with_context(|| format!("argument {position} ({name})"))
        .map(|value| value.unwrap_or(default))
}

//! The data directory's free space, looked at before every commit. The
//! engine's first failed write poisons it until a restart, so a disk that
//! is filling up must stop writes before that: below the reserve, a commit
//! is refused (`StoreError::DiskFull`) without touching the engine, and
//! writes resume by themselves once space is freed.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::StoreError;

/// Free bytes below which commits are refused, unless configured: room
/// for the engine's own flushes and compactions after the last commit.
pub const DEFAULT_RESERVE: u64 = 128 << 20;

/// How free bytes are found: the file system's answer, or a test's.
pub type FreeBytes = Box<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

pub(super) struct Space {
    dir: PathBuf,
    reserve: u64,
    free: FreeBytes,
}

impl Space {
    pub(super) fn new(dir: &Path, reserve: u64, free: FreeBytes) -> Self {
        Self {
            dir: dir.to_owned(),
            reserve,
            free,
        }
    }

    /// `Err(DiskFull)` when fewer than the reserve's bytes are free. A
    /// file system that cannot say does not stop writes: the commit itself
    /// will tell.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match (self.free)(&self.dir) {
            Ok(free) if free < self.reserve => Err(StoreError::DiskFull {
                dir: self.dir.clone(),
                free,
                reserve: self.reserve,
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read the free space");
                Ok(())
            }
        }
    }
}

/// The bytes an unprivileged process may still write on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

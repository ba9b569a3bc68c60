//! The data directory's free space, looked at before every commit. The
//! engine's first failed write poisons it until a restart, so a disk that
//! is filling up must stop writes before that, without touching the engine
//! (`StoreError::DiskFull`), and writes resume by themselves once space is
//! freed. In two steps: below the reserve, nothing new is taken (campaigns,
//! participants) and sending pauses, while what is already under way
//! (outcomes of sends in flight, receipts, bounces, clicks, counters) is
//! still recorded down to half the reserve, below which nothing is.

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

/// The room left on the data directory's disk.
pub(super) enum Room {
    Enough,
    /// Below the reserve: only what is already under way is written.
    Low(StoreError),
    /// Below half the reserve: nothing is written.
    Exhausted(StoreError),
}

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

    /// How much room is left. A file system that cannot say does not stop
    /// writes: the commit itself will tell.
    pub(super) fn room(&self) -> Room {
        let free = match (self.free)(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read the free space");
                return Room::Enough;
            }
        };
        let full = || StoreError::DiskFull {
            dir: self.dir.clone(),
            free,
            reserve: self.reserve,
        };
        if free < self.reserve / 2 {
            Room::Exhausted(full())
        } else if free < self.reserve {
            Room::Low(full())
        } else {
            Room::Enough
        }
    }

    /// `Err(DiskFull)` below the reserve: nothing new is taken.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match self.room() {
            Room::Enough => Ok(()),
            Room::Low(full) | Room::Exhausted(full) => Err(full),
        }
    }
}

/// The bytes an unprivileged process may still write on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

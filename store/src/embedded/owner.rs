//! One daemon per data directory: the first takes an exclusive lock on
//! `sluice.pid` and writes its pid there, so the second can say who owns it.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
    time::{Duration, Instant},
};

use crate::{Result, StoreError};

const PID_FILE: &str = "sluice.pid";
/// How long a claim waits for the owner to let go: a store closed in this
/// process releases its directory once its committer thread has ended.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// Held for as long as the store is open; the OS drops the lock with it,
/// even after `kill -9`.
pub(super) struct DirectoryOwner {
    _file: File,
}

impl DirectoryOwner {
    /// Claims `dir` (creating it), or says which process holds it.
    pub(super) fn claim(dir: &Path) -> Result<Self> {
        let unavailable = |e: std::io::Error| {
            StoreError::Unavailable(format!("data directory {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(PID_FILE))
            .map_err(unavailable)?;
        let since = Instant::now();
        let locked = loop {
            match file.try_lock() {
                Err(TryLockError::WouldBlock) if since.elapsed() < RELEASE_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                locked => break locked,
            }
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // The owner may be between truncating and writing: say so.
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(StoreError::InUse {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(unavailable(e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .map_err(unavailable)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_told_the_first_ones_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = DirectoryOwner::claim(dir.path()).expect("first claim");
        let Err(second) = DirectoryOwner::claim(dir.path()) else {
            panic!("a second claim must fail");
        };
        assert_eq!(
            second.to_string(),
            format!(
                "data directory {} is in use by pid {}",
                dir.path().display(),
                std::process::id()
            )
        );
    }

    #[test]
    fn the_directory_is_free_again_once_its_owner_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(DirectoryOwner::claim(dir.path()).expect("first claim"));
        DirectoryOwner::claim(dir.path()).expect("claim after the first let go");
    }
}

//! One process per data directory: an exclusive OS lock on `watchwire.lock`.

use std::path::Path;

use crate::store::StoreError;

/// An exclusive OS lock on `watchwire.lock` in the data directory. Two processes on one
/// directory would each route only their own publishes, so events acknowledged by one
/// would never reach the other's channels: the second must refuse to start. The kernel
/// drops the lock when its holder dies, so a `kill -9` never leaves a stale lock.
pub struct DirLock {
    /// Holding the open file is holding the lock.
    _file: std::fs::File,
}

impl DirLock {
    const FILE: &'static str = "watchwire.lock";

    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        use std::io::{Read, Seek, Write};
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("another watchwire process (pid {pid})"),
                };
                return Err(StoreError::Backend(format!(
                    "the data directory {} is in use by {holder}; stop it first, or give this one another --data-dir",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Name the holder for whoever tries next.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the pid into the data directory's lock file");
        }
        Ok(DirLock { _file: file })
    }
}

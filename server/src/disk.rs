//! The free-space guard: watches the disk that holds the data directory.
//!
//! Auditing fails closed, so a full disk means 503 for everyone. When the
//! disk is nearly full (less than `--min-free-disk-mib` left), the server
//! first stops unauthenticated work (enrollment, sign-in, every request
//! without a session), which anyone could otherwise use to fill what is
//! left, while signed-in clinicians go on until the disk is truly full. It
//! logs that loudly, once a minute while it lasts, and health and
//! readiness show it. Space coming back ends it by itself.
//!
//! On PostgreSQL the database's own disk is not visible from here; the
//! data directory still holds the keys and, usually, the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default free space below which the disk counts as nearly full.
pub const DEFAULT_MIN_FREE_MIB: u64 = 64;
/// How often the free space is measured.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often a disk that stays low is logged again.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What the guard last measured.
#[derive(Debug)]
pub struct DiskGuard {
    path: PathBuf,
    min_free_bytes: u64,
    low: AtomicBool,
    free_bytes: AtomicU64,
}

impl DiskGuard {
    /// A guard for the disk holding `path`, measured once now.
    pub fn new(path: &Path, min_free_bytes: u64) -> Arc<Self> {
        let guard = Arc::new(Self {
            path: path.to_owned(),
            min_free_bytes,
            low: AtomicBool::new(false),
            free_bytes: AtomicU64::new(u64::MAX),
        });
        guard.measure();
        guard
    }

    /// Whether the disk is nearly full.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// The free space last measured, in bytes (for a person to read).
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// Measures the free space now; returns whether it is low. A disk that
    /// cannot be measured keeps its last state.
    pub fn measure(&self) -> bool {
        match free_bytes(&self.path) {
            Ok(free) => {
                self.free_bytes.store(free, Ordering::Relaxed);
                let low = free < self.min_free_bytes;
                self.low.store(low, Ordering::Relaxed);
                low
            }
            Err(error) => {
                tracing::warn!(%error, "cannot measure the data directory's free disk space");
                self.is_low()
            }
        }
    }

    /// Measures the disk every few seconds until aborted, logging when it
    /// becomes nearly full (and every minute while it stays so) and when
    /// it recovers.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let guard = self.clone();
        tokio::spawn(async move {
            let mut warned: Option<Instant> = None;
            let mut ticks = tokio::time::interval(CHECK_EVERY);
            loop {
                ticks.tick().await;
                let low = guard.measure();
                if low && warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warned = Some(Instant::now());
                    tracing::error!(
                        free_mib = guard.free_bytes() / (1024 * 1024),
                        min_free_mib = guard.min_free_bytes / (1024 * 1024),
                        "the data directory's disk is nearly full: refusing enrollment, sign-in \
                         and other unauthenticated requests until space is freed (setting \
                         `min_free_disk_mib`)"
                    );
                } else if !low && warned.is_some() {
                    warned = None;
                    tracing::warn!(
                        free_mib = guard.free_bytes() / (1024 * 1024),
                        "the data directory's disk has space again: serving everyone"
                    );
                }
            }
        })
    }
}

/// The space an unprivileged process may still use on `path`'s disk.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_below_the_minimum_is_low() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!DiskGuard::new(dir.path(), 0).is_low());
        let guard = DiskGuard::new(dir.path(), u64::MAX);
        assert!(guard.is_low());
        assert!(guard.free_bytes() < u64::MAX);
    }
}

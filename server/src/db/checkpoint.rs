//! Copies SQLite's write-ahead log back into the database file on a
//! thread of its own, so that no commit waits for it.
//!
//! SQLite's own checkpoint runs inside the commit that takes the log past
//! `wal_autocheckpoint` pages: that commit, and every request queued
//! behind the audit writer, waits while the log's pages are copied and the
//! database file is synced (measured: 11 to 47 ms on the benchmark
//! machine, every second or so under load). Here a thread watches the
//! log's length and, once it passes [`COPY_AT`] frames, copies it back with
//! `PASSIVE` checkpoints, which run beside readers and writers and take no
//! lock they wait for. It repeats them, each copying what was committed
//! during the one before, until the whole log is in the database file;
//! the next commit that finds no reader still in the log then starts it
//! over from its beginning, as after any complete checkpoint.
//!
//! Under writes too constant for a pass ever to finish between two
//! commits, or while a long reader (an audit export) holds frames, the
//! log keeps growing, and every commit past `wal_autocheckpoint`
//! ([`super::SQLITE_PRAGMAS`]) tries a checkpoint, as SQLite always does;
//! it finds nearly everything copied already. If this thread fails, that
//! is all that changes. Its connection syncs as every connection does
//! (`synchronous=FULL`): the log before its pages are copied, the database
//! file before the log may start over.
//!
//! The log's length is read from the wal-index header in the `-shm` file
//! (<https://www.sqlite.org/walformat.html>, "The WAL-Index Header"), as a
//! hint only: SQLite decides what each checkpoint copies.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::batch::{LinkError, open_sqlite};

/// Frames in the log (pages of 4 KiB by default: 32 MiB) past which it is
/// copied back. Half of `wal_autocheckpoint`, so that the copying, started
/// here, is done before a commit would start it.
pub const COPY_AT: u32 = 8_192;
/// How often the log's length is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(20);
/// The most passes made in a row; the next look starts more.
const MAX_PASSES: usize = 16;
/// How long to wait after passes that copied nothing (a reader still
/// needs the frames), before trying again.
const AFTER_NO_PROGRESS: Duration = Duration::from_millis(500);
/// How long to wait after a failed checkpoint (a full or failing disk)
/// before trying again: one warning every few seconds, not fifty a second.
const AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The checkpointing thread. Dropping this stops it and waits for it (at
/// most the pass it is in).
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts a thread that checkpoints the SQLite database at `path`
    /// (already opened, in WAL mode) whenever its log holds `copy_at`
    /// frames or more.
    pub fn start(path: &Path, copy_at: u32) -> Result<Self, LinkError> {
        let connection = open_sqlite(path, super::SQLITE_PRAGMAS)?;
        let shm = File::open(shm_path(path))?;
        let (stop, stopped) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || watch(&connection, &shm, copy_at, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel is the signal.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: looks at the log's length every [`LOOK_EVERY`] and copies
/// it back when it is long, until told to stop.
fn watch(connection: &rusqlite::Connection, shm: &File, copy_at: u32, stopped: &Receiver<()>) {
    let mut wait = LOOK_EVERY;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        wait = LOOK_EVERY;
        let Some(log) = read_log(shm) else { continue };
        if log.frames < copy_at || log.backfilled >= log.frames {
            continue;
        }
        match copy_back(connection, stopped) {
            Ok(Copied::All | Copied::Some) => {}
            Ok(Copied::Stuck) => wait = AFTER_NO_PROGRESS,
            Err(error) => {
                tracing::warn!(%error, "cannot checkpoint the write-ahead log; retrying in 5 s");
                wait = AFTER_FAILURE;
            }
        }
    }
}

/// The wal-index file beside the database file at `path`.
fn shm_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

/// The log's length and how much of it is in the database file, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Log {
    frames: u32,
    backfilled: u32,
}

/// Reads the wal-index header: two copies of 48 bytes (SQLite writes the
/// second, then the first; read in the other order, they differ only while
/// it does), `mxFrame` at byte 16 of each, and `nBackfill` at byte 96, all
/// in the machine's byte order.
fn read_log(shm: &File) -> Option<Log> {
    let mut header = [0_u8; 100];
    shm.read_exact_at(&mut header, 0).ok()?;
    if header[..48] != header[48..96] {
        return None;
    }
    let word = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    Some(Log {
        frames: word(16)?,
        backfilled: word(96)?,
    })
}

/// How far [`copy_back`] got.
enum Copied {
    /// The whole log, or as much as there was before it was told to stop.
    All,
    /// Not all before [`MAX_PASSES`] ran out: the next look goes on.
    Some,
    /// Not all: a pass copied nothing more (a reader still needs the
    /// frames), or another checkpoint was running.
    Stuck,
}

/// Makes `PASSIVE` checkpoints until the log is all copied, or it cannot
/// be for now, or the thread is told to stop.
fn copy_back(
    connection: &rusqlite::Connection,
    stopped: &Receiver<()>,
) -> rusqlite::Result<Copied> {
    let started = std::time::Instant::now();
    let mut pass = connection.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?;
    let mut copied_before = None;
    let mut passes = 0;
    let mut outcome = Copied::Some;
    let mut left = 0;
    while passes < MAX_PASSES {
        passes += 1;
        // One row: blocked (1 if another checkpoint was running), the
        // log's frames, the frames now in the database file.
        let (blocked, frames, copied): (i64, i64, i64) =
            pass.query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        left = frames - copied;
        if copied >= frames || !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
            outcome = Copied::All;
            break;
        }
        if blocked != 0 || copied_before == Some(copied) {
            outcome = Copied::Stuck;
            break;
        }
        copied_before = Some(copied);
    }
    tracing::debug!(
        passes,
        left,
        took_us = started.elapsed().as_micros(),
        "write-ahead log checkpointed"
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(dir.join("test.db")).unwrap();
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (n INTEGER PRIMARY KEY, body BLOB NOT NULL);",
            )
            .unwrap();
        connection
    }

    /// Writes `count` rows of 4 KiB, one transaction each.
    fn write(connection: &rusqlite::Connection, count: usize) {
        for _ in 0..count {
            connection
                .execute("INSERT INTO t (body) VALUES (zeroblob(4096))", [])
                .unwrap();
        }
    }

    fn log(dir: &Path) -> Log {
        read_log(&File::open(shm_path(&dir.join("test.db"))).unwrap()).unwrap()
    }

    #[test]
    fn copying_starts_at_half_the_autocheckpoint() {
        let setting = format!("PRAGMA wal_autocheckpoint = {};", 2 * COPY_AT);
        assert!(super::super::SQLITE_PRAGMAS.contains(&setting));
    }

    #[test]
    fn the_header_says_what_sqlite_says() {
        let dir = tempfile::tempdir().unwrap();
        let connection = database(dir.path());
        write(&connection, 50);
        let before = log(dir.path());
        assert!(before.frames >= 100, "{before:?}");
        assert_eq!(before.backfilled, 0);
        let (frames, copied): (i64, i64) = connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(i64::from(before.frames), frames);
        assert_eq!(
            log(dir.path()),
            Log {
                frames: before.frames,
                backfilled: u32::try_from(copied).unwrap()
            }
        );
        assert_eq!(copied, frames);
    }

    #[test]
    fn a_long_log_is_copied_back_and_then_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let connection = database(dir.path());
        // Below the threshold: nothing is copied.
        let checkpointer = Checkpointer::start(&dir.path().join("test.db"), 400).unwrap();
        write(&connection, 50);
        std::thread::sleep(LOOK_EVERY * 5);
        let short = log(dir.path());
        assert_eq!(short.backfilled, 0, "{short:?}");
        // Past it: all of it is, with no checkpoint here.
        write(&connection, 200);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let long = loop {
            let long = log(dir.path());
            if long.backfilled == long.frames || std::time::Instant::now() > deadline {
                break long;
            }
            std::thread::sleep(LOOK_EVERY);
        };
        assert!(long.frames >= 400, "{long:?}");
        assert_eq!(long.backfilled, long.frames, "{long:?}");
        // And, once the thread is done, the next commit starts the log
        // over.
        drop(checkpointer);
        write(&connection, 1);
        let restarted = log(dir.path());
        assert!(restarted.frames < 10, "{restarted:?}");
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 251);
    }
}

//! Tracing set-up: readable text by default, one JSON object per line with
//! `--log-format json`. The filter comes from `CURBSIDE_LOG` (same syntax as
//! `RUST_LOG`), defaulting to `info` for Curbside and `warn` for libraries.
//!
//! A log line that cannot be written must never take the server down: with
//! standard error on a full disk, a closed pipe or a log shipper that
//! stopped reading, the server once aborted at its first line (the
//! formatter reported the failed write with `eprintln!`, which panicked on
//! the same broken stream, inside the panic hook). So lines go through a
//! bounded queue to a thread of their own, which writes them to standard
//! error; a line the queue has no room for, or that the write refuses, is
//! dropped and counted ([`lost_lines`]), and readiness reports the count.
//! Request threads never wait for standard error.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// The filter used when `CURBSIDE_LOG` is not set. rustls is held to
/// errors because its warnings quote what unauthenticated peers sent.
pub const DEFAULT_FILTER: &str = "warn,rustls=error,tokio_rustls=error,curbside_server=info";

/// Lines waiting for the writer thread; more are dropped and counted.
const QUEUE_LINES: usize = 8192;
/// How long [`flush`] waits for the queue to drain.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Log lines dropped because they could not be written.
static LOST_LINES: AtomicU64 = AtomicU64::new(0);
/// The queue to the writer thread, once started.
static QUEUE: OnceLock<SyncSender<Line>> = OnceLock::new();

/// How many log lines were dropped since start because standard error
/// refused them or could not keep up.
pub fn lost_lines() -> u64 {
    LOST_LINES.load(Ordering::Relaxed)
}

enum Line {
    Text(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Installs the global tracing subscriber. Logs go to standard error, so
/// standard output carries only the start-up banner and command output.
pub fn init(format: LogFormat) {
    let filter = match std::env::var("CURBSIDE_LOG") {
        Ok(directives) => EnvFilter::try_new(&directives).unwrap_or_else(|error| {
            report(&format!(
                "curbside-server: ignoring CURBSIDE_LOG ({error}); using the default {DEFAULT_FILTER:?}"
            ));
            EnvFilter::new(DEFAULT_FILTER)
        }),
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QueuedStderr)
        // Colour only for a person at a terminal, never into a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A second initialisation (tests starting several servers) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Writes `message` and a newline to standard error, as `eprintln!` would,
/// but never panics: a failed write is counted as a lost line.
pub fn report(message: &str) {
    let mut line = String::with_capacity(message.len() + 1);
    line.push_str(message);
    line.push('\n');
    write_out(line.as_bytes());
}

/// Waits (briefly) until the lines logged so far have been written, so
/// that the last ones before the process exits are not lost.
pub fn flush() {
    let Some(queue) = QUEUE.get() else {
        return;
    };
    // Bounded: a full queue behind a stalled standard error must not hold
    // the process.
    let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
    let (done, wait) = mpsc::sync_channel(1);
    let mut marker = Line::Flush(done);
    loop {
        match queue.try_send(marker) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                marker = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
    let _ = wait.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
}

fn write_out(bytes: &[u8]) {
    if std::io::stderr().lock().write_all(bytes).is_err() {
        LOST_LINES.fetch_add(1, Ordering::Relaxed);
    }
}

fn queue() -> Option<&'static SyncSender<Line>> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    if let Some(queue) = QUEUE.get() {
        return Some(queue);
    }
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if !*started {
        *started = true;
        let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
        let spawned = std::thread::Builder::new()
            .name("curbside-log".to_owned())
            .spawn(move || write_lines(&receiver));
        if spawned.is_ok() {
            let _ = QUEUE.set(sender);
        }
    }
    QUEUE.get()
}

fn write_lines(lines: &Receiver<Line>) {
    while let Ok(line) = lines.recv() {
        match line {
            Line::Text(bytes) => write_out(&bytes),
            Line::Flush(done) => {
                let _ = std::io::stderr().lock().flush();
                let _ = done.try_send(());
            }
        }
    }
}

/// Hands each formatted line to the writer thread.
struct QueuedStderr;

/// One line's writer.
struct QueuedLine;

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> Self::Writer {
        QueuedLine
    }
}

impl Write for QueuedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match queue() {
            Some(queue) => match queue.try_send(Line::Text(buf.to_vec())) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    LOST_LINES.fetch_add(1, Ordering::Relaxed);
                }
            },
            // No thread to write with: write here, still without failing.
            None => write_out(buf),
        }
        // Never an error: the formatter would report it with `eprintln!`.
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replaces the default panic hook, which prints the panic's message (it
/// may hold request data) to standard error, with one that logs only where
/// the panic happened. The request still gets a 500 with a JSON body.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        tracing::error!(%location, "panic (message withheld: it may hold request data)");
    }));
}

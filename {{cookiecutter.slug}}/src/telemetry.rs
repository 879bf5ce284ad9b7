//! Logs through `tracing`: a filter from `RUST_LOG`, JSON or text lines, written to
//! stdout by a background thread so that a slow log reader never stalls a request.

use std::io::{self, Write};
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};
use crate::json_lines::JsonLines;

/// Lines waiting beyond this are dropped (and counted) instead of growing memory
/// while nobody reads stdout.
const MAX_PENDING_BYTES: usize = 4 << 20;

/// How long the writer lets lines gather after the first one arrives; also the most
/// a line waits before it is written.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Log lines dropped because stdout did not keep up (exported as a metric).
pub static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// Installs the global subscriber and a panic hook that logs through it. Keep the
/// guard until the end of `main`: dropping it writes out the last lines.
pub fn init(config: &Config) -> Result<LogGuard, String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|err| format!("RUST_LOG={:?} is invalid: {err}", config.log_filter))?;
    let (writer, guard) = non_blocking(io::stdout());
    let subscriber = tracing_subscriber::registry().with(filter);
    let installed = match config.effective_log_format() {
        LogFormat::Json => subscriber.with(JsonLines::new(writer)).try_init(),
        LogFormat::Text => subscriber
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init(),
    };
    installed.map_err(|err| format!("cannot install the logger: {err}"))?;
    std::panic::set_hook(Box::new(log_panic));
    Ok(guard)
}

/// Runs on the panicking thread, inside the request's span: the line carries its id.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let location = info
        .location()
        .map(|location| format!("{}:{}", location.file(), location.line()));
    tracing::error!(
        panic.location = location.as_deref().unwrap_or("unknown"),
        "panic: {message}"
    );
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Appends formatted lines to a buffer that a background thread writes out; a
/// request pays one short lock and a copy, never a system call.
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

/// Stops the writer thread after it has written everything pending.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer for `out` and the guard that flushes it.
pub fn non_blocking(out: impl Write + Send + 'static) -> (NonBlocking, LogGuard) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    });
    let writer_shared = Arc::clone(&shared);
    let thread = thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || write_out(&writer_shared, out))
        .expect("the log writer thread starts");
    (
        NonBlocking {
            shared: Arc::clone(&shared),
        },
        LogGuard {
            shared,
            thread: Some(thread),
        },
    )
}

fn write_out(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closed {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        // Let lines gather: one write per batch instead of a wake-up and a system call
        // per line, which cost more than formatting the line.
        thread::sleep(BATCH_WINDOW);
        let closed = {
            let mut state = shared.lock();
            mem::swap(&mut state.pending, &mut batch);
            state.closed
        };
        // A closed or broken stdout loses lines; there is nowhere to report it.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed && shared.lock().pending.is_empty() {
            return;
        }
    }
}

impl Write for NonBlocking {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        (&*self).write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &NonBlocking {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.pending.len() + bytes.len() > MAX_PENDING_BYTES {
            DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes.len());
        }
        let was_empty = state.pending.is_empty();
        state.pending.extend_from_slice(bytes);
        drop(state);
        // The writer sleeps only when nothing is pending: one wake-up per batch.
        if was_empty {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = &'a NonBlocking;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the writer thread writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_once_the_guard_drops() {
        let sink = Sink::default();
        let (writer, guard) = non_blocking(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..1000 {
                        writer.write_all(format!("{t}-{i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 4000);
        assert!(written.lines().any(|line| line == "3-999"));
    }
}

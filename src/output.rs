//! The gateway's own output: log lines on standard error, the listening line on
//! standard output. Neither may stop, panic or hold up the gateway when it cannot be
//! written (a full disk, a closed pipe, a reader that stopped reading): lines go
//! through a bounded queue to one writer thread, and a line that cannot be queued or
//! written is dropped and counted in `watchwire_log_lines_dropped_total`.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines waiting for the writer at most: a burst while the output is slow fits, an
/// output that blocks for good costs this much memory and no more.
const QUEUE_LINES: usize = 8192;

/// How long the writer keeps retrying a non-blocking output that is full (`EAGAIN`)
/// before it drops the line.
const FULL_OUTPUT_PATIENCE: Duration = Duration::from_secs(1);
const FULL_OUTPUT_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

struct Line {
    stream: Stream,
    bytes: Vec<u8>,
}

/// Lines the writer has finished with (written or dropped), for [`flush`].
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    advanced: Condvar,
}

struct Output {
    queue: SyncSender<Line>,
    queued: AtomicU64,
    progress: Arc<Progress>,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn output() -> &'static Output {
    OUTPUT.get_or_init(|| {
        let (queue, lines) = sync_channel::<Line>(QUEUE_LINES);
        let progress = Arc::new(Progress::default());
        let finished = progress.clone();
        // Without the thread every line is dropped and counted once the queue is full:
        // the gateway still runs.
        let _ = std::thread::Builder::new()
            .name("watchwire-output".into())
            .spawn(move || {
                for line in lines {
                    if write_line(&line).is_err() {
                        count_dropped();
                    }
                    let mut done = finished.done.lock().unwrap_or_else(|p| p.into_inner());
                    *done += 1;
                    finished.advanced.notify_all();
                }
            });
        Output {
            queue,
            queued: AtomicU64::new(0),
            progress,
        }
    })
}

fn write_line(line: &Line) -> std::io::Result<()> {
    match line.stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            write_patiently(&mut out, &line.bytes)?;
            out.flush()
        }
        Stream::Stderr => write_patiently(&mut std::io::stderr().lock(), &line.bytes),
    }
}

/// `write_all`, except that an output set non-blocking by whoever shares it gets a
/// moment to drain before the line is given up.
fn write_patiently(out: &mut impl Write, mut bytes: &[u8]) -> std::io::Result<()> {
    let started = Instant::now();
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == ErrorKind::WouldBlock
                    && started.elapsed() < FULL_OUTPUT_PATIENCE =>
            {
                std::thread::sleep(FULL_OUTPUT_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn count_dropped() {
    let total = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    // `absolute` keeps the highest value: writers racing cannot move it back.
    metrics::counter!("watchwire_log_lines_dropped_total").absolute(total);
}

/// Lines dropped so far in this process (also those dropped before the metrics
/// recorder was installed).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Queues one line (ending in a newline) for `stream`; never blocks, never fails.
pub fn line(stream: Stream, bytes: Vec<u8>) {
    let output = output();
    match output.queue.try_send(Line { stream, bytes }) {
        Ok(()) => {
            output.queued.fetch_add(1, Ordering::Release);
        }
        Err(_) => count_dropped(),
    }
}

/// Waits until every line queued before this call is written or dropped, at most
/// `timeout` (an output that blocks must not keep the process from exiting). Whether
/// they all were.
pub fn flush(timeout: Duration) -> bool {
    let Some(output) = OUTPUT.get() else {
        return true;
    };
    let target = output.queued.load(Ordering::Acquire);
    let deadline = Instant::now() + timeout;
    let progress = &output.progress;
    let mut done = progress.done.lock().unwrap_or_else(|p| p.into_inner());
    while *done < target {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        done = progress
            .advanced
            .wait_timeout(done, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    true
}

/// The log's writer (`tracing_subscriber`'s `MakeWriter`): each log event is formatted
/// into one buffer and queued as one line for standard error when it is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            line(Stream::Stderr, std::mem::take(&mut self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses as a full disk does, or takes a few bytes at a time.
    struct Sink {
        taken: Vec<u8>,
        at_most: usize,
        would_block: usize,
        error: Option<ErrorKind>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(kind) = self.error {
                return Err(kind.into());
            }
            if self.would_block > 0 {
                self.would_block -= 1;
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.at_most);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sink() -> Sink {
        Sink {
            taken: Vec::new(),
            at_most: 3,
            would_block: 0,
            error: None,
        }
    }

    #[test]
    fn a_line_is_written_whole_across_short_writes_and_a_moment_of_eagain() {
        let mut out = sink();
        out.would_block = 2;
        write_patiently(&mut out, b"one line\n").unwrap();
        assert_eq!(out.taken, b"one line\n");
    }

    #[test]
    fn a_full_disk_or_a_closed_pipe_is_an_error_not_a_panic() {
        for kind in [ErrorKind::StorageFull, ErrorKind::BrokenPipe] {
            let mut out = sink();
            out.error = Some(kind);
            assert_eq!(write_patiently(&mut out, b"x\n").unwrap_err().kind(), kind);
        }
        // An output that stays full is given up after a while, not waited on forever.
        let mut out = sink();
        out.would_block = usize::MAX;
        let err = write_patiently(&mut out, b"x\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
    }
}

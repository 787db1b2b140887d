//! Guests' stdout and stderr, written line by line with the component's id
//! in front, so interleaved requests stay readable: to the host's stderr, or
//! appended to the log file the host was given, so a test run can read back
//! every line its guests wrote (the log audit does) and keep its output
//! readable.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A file every app of the process may append guests' lines to.
pub type LogFile = Arc<Mutex<File>>;

/// Opens `path` for appending (creating it), shared by the lines of all
/// requests; each line is one write, so processes appending to the same file
/// do not tear each other's lines.
pub fn open(path: &Path) -> std::io::Result<LogFile> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Arc::new(Mutex::new(file)))
}

pub struct GuestLog {
    prefix: Arc<str>,
    file: Option<LogFile>,
}

impl GuestLog {
    pub fn new(component: &str, file: Option<LogFile>) -> GuestLog {
        GuestLog {
            prefix: format!("[{component}] ").into(),
            file,
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            prefix: self.prefix.clone(),
            file: self.file.clone(),
            pending: Vec::new(),
        })
    }
}

struct LineWriter {
    prefix: Arc<str>,
    file: Option<LogFile>,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let mut whole = Vec::with_capacity(self.prefix.len() + line.len() + 1);
        whole.extend_from_slice(self.prefix.as_bytes());
        whole.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            whole.push(b'\n');
        }
        match &self.file {
            Some(file) => {
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(&whole);
                }
            }
            None => {
                let _ = std::io::stderr().lock().write_all(&whole);
            }
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }
}

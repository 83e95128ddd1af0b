//! Native only: the tar walk (and its hashing) on a second thread, fed through a bounded
//! channel of buffers, so decompression and hashing of one layer use two cores, as
//! `gzip -dc | sha256sum` does. Memory stays bounded: [`DEPTH`] buffers of
//! [`BUF_LEN`] bytes in flight.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::tar::{TarListing, TarWalker};
use super::WalkError;

/// Size of each buffer handed to the walker thread.
pub const BUF_LEN: usize = 128 * 1024;

/// Buffers in flight between the two threads.
pub const DEPTH: usize = 4;

type Worker = JoinHandle<Result<TarListing, super::tar::TarError>>;

/// The decoder's output end of the pipe.
pub(super) struct Pipe {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
    worker: Option<Worker>,
    broken: bool,
}

impl Pipe {
    /// Starts the walker thread, walking with `walker`.
    pub(super) fn spawn(mut walker: TarWalker) -> io::Result<Self> {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (free_tx, free) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let worker = std::thread::Builder::new()
            .name("kiln-tar-walk".into())
            .spawn(move || {
                for mut chunk in rx {
                    walker.push(&chunk)?;
                    chunk.clear();
                    // Recycling is best effort: a full free list just drops the buffer.
                    let _ = free_tx.try_send(chunk);
                }
                walker.finish()
            })?;
        Ok(Self {
            buf: Vec::with_capacity(BUF_LEN),
            tx: Some(tx),
            free,
            worker: Some(worker),
            broken: false,
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUF_LEN));
        let full = std::mem::replace(&mut self.buf, next);
        let stopped = || io::Error::other("tar walker stopped");
        let sent = self.tx.as_ref().ok_or_else(stopped)?.send(full);
        if sent.is_err() {
            self.broken = true;
        }
        sent.map_err(|_| stopped())
    }

    /// If the walker thread stopped (so a write failed because of it), its error.
    pub(super) fn take_error(&mut self) -> Option<WalkError> {
        if self.broken {
            self.finish().err()
        } else {
            None
        }
    }

    /// Sends what is buffered, closes the pipe and waits for the walker's result.
    pub(super) fn finish(&mut self) -> Result<TarListing, WalkError> {
        let sent = self.send();
        self.tx = None;
        let result = match self.worker.take() {
            Some(worker) => match worker.join() {
                Ok(r) => r.map_err(WalkError::Tar),
                Err(_) => Err(WalkError::WorkerLost),
            },
            None => Err(WalkError::WorkerLost),
        };
        // A walker error explains a failed send.
        let listing = result?;
        sent.map_err(|_| WalkError::WorkerLost)?;
        Ok(listing)
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BUF_LEN - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= BUF_LEN {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

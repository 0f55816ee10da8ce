//! Async bridge from a stream of records to a stream of export bytes, for HTTP downloads.
//!
//! The exporters are synchronous `Write`rs (csv and rust_xlsxwriter are), so the export runs
//! on a blocking thread. Records reach it through a bounded channel fed by a small task that
//! polls the record stream, and bytes come back through another bounded channel in chunks.
//! Both channels are bounded, so memory stays constant however slow the client: the export
//! simply waits. Dropping the byte stream (a client that went away) closes the channels, and
//! the thread and the task stop at their next send.

use std::io::{self, Write};

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use tokio::sync::mpsc;

use crate::{ExportError, ExportFormat, Record, StorageError, record_writer};

/// Bytes gathered before a chunk is handed to the byte stream.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the export thread and the consumer.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Records in flight between the record stream and the export thread.
const RECORDS_IN_FLIGHT: usize = 256;

type ByteResult = Result<Bytes, io::Error>;

/// Export records from a stream into `format` as a byte stream (for HTTP responses), constant
/// memory: the sync RecordWriter runs on a blocking thread writing into a bounded
/// channel-backed `Write`.
///
/// Nothing starts until the stream is first polled, which must happen inside a Tokio runtime.
/// An error from the record stream ends the byte stream: the bytes of the records before it
/// (flushed, so JSON/JSONL/CSV end after a complete record), then the error as the last item.
/// An HTTP server then aborts the response, so the client sees a truncated download rather
/// than a complete-looking one. A writer error ends the stream the same way.
pub fn export_stream(
    records: impl Stream<Item = Result<Record, StorageError>> + Send + 'static,
    format: ExportFormat,
    columns: Vec<String>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    stream::once(async move {
        let (record_sender, record_receiver) = mpsc::channel(RECORDS_IN_FLIGHT);
        let (byte_sender, byte_receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(forward_records(records, record_sender));
        tokio::task::spawn_blocking(move || {
            write_export(record_receiver, format, &columns, byte_sender);
        });
        stream::unfold(byte_receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((chunk, receiver))
        })
    })
    .flatten()
}

/// Polls the record stream and hands records to the export thread until either side ends.
async fn forward_records(
    records: impl Stream<Item = Result<Record, StorageError>> + Send,
    sender: mpsc::Sender<Result<Record, StorageError>>,
) {
    let mut records = std::pin::pin!(records);
    while let Some(record) = records.next().await {
        let failed = record.is_err();
        if sender.send(record).await.is_err() || failed {
            // The export is gone, or it has been told about the error and will stop.
            return;
        }
    }
}

/// Runs on the blocking thread: writes every record, then the closing bytes; an error is
/// sent as the stream's last item.
fn write_export(
    mut records: mpsc::Receiver<Result<Record, StorageError>>,
    format: ExportFormat,
    columns: &[String],
    bytes: mpsc::Sender<ByteResult>,
) {
    let out = ChannelWriter::new(bytes.clone());
    let written = (|| -> Result<(), io::Error> {
        let mut writer = record_writer(format, out, columns).map_err(into_io_error)?;
        loop {
            if bytes.is_closed() {
                // Nobody reads any more; stop rather than export into the void.
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "export stream was dropped",
                ));
            }
            let next = match records.try_recv() {
                Ok(next) => Some(next),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // The source is slow (storage reads): send what is ready so the client
                    // sees progress, then wait.
                    writer.flush().map_err(into_io_error)?;
                    records.blocking_recv()
                }
            };
            let Some(record) = next else { break };
            match record {
                Ok(record) => writer.write_record(&record).map_err(into_io_error)?,
                Err(error) => {
                    // Hand over the complete records written so far, then the error.
                    writer.flush().map_err(into_io_error)?;
                    return Err(io::Error::other(error));
                }
            }
        }
        writer.finish().map_err(into_io_error)
    })();
    if let Err(error) = written {
        // If the consumer is gone there is nobody left to tell.
        let _ = bytes.blocking_send(Err(error));
    }
}

fn into_io_error(error: ExportError) -> io::Error {
    match error {
        ExportError::Io(error) => error,
        other => io::Error::other(other),
    }
}

/// A `Write` that gathers bytes into chunks and sends each through a bounded channel,
/// blocking (on the export thread) while the channel is full.
struct ChannelWriter {
    sender: mpsc::Sender<ByteResult>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn new(sender: mpsc::Sender<ByteResult>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "export stream was dropped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

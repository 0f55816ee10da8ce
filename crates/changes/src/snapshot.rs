//! A run's snapshot: its records as `(key, occurrence, canonical record)` entries sorted by
//! key, built by an external merge sort (sorted buffers spilled to temporary files, k-way
//! merged) and stored as chunk objects `runs/{run}/changes/{snapshot_name}/{index}.snap`.
//!
//! A line of a spill file or snapshot object is `key \t number \t record \n`: canonical JSON
//! texts and `sha256:` keys never hold a raw tab or newline. In a spill the number is the
//! record's position in the run; in the snapshot it is the occurrence of the key (1, 2, …
//! in run order), so records sharing a key are all kept and are paired across runs in the
//! order they were extracted.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use futures::StreamExt;
use selextract_results::ResultStore;
use tokio::sync::mpsc;

use crate::key::{record_entry, short_hash};
use crate::{ChangeOptions, ChangesError};

/// One record of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// 1 for the first record with this key in run order, 2 for the second, …
    pub occurrence: u64,
    /// The record's canonical JSON text.
    pub record: String,
}

impl Entry {
    /// Snapshot order: by key (bytes), then occurrence.
    pub fn order(&self, other: &Entry) -> Ordering {
        self.key
            .as_bytes()
            .cmp(other.key.as_bytes())
            .then(self.occurrence.cmp(&other.occurrence))
    }

    /// The key as shown to users: the key, and `#n` for its n-th occurrence after the first.
    pub fn display_key(&self) -> String {
        if self.occurrence <= 1 {
            self.key.clone()
        } else {
            format!("{}#{}", self.key, self.occurrence)
        }
    }
}

/// A stored snapshot: where its objects are and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub run_id: String,
    /// The folder of its objects below `runs/{run}/changes/` ([`snapshot_name`]).
    pub name: String,
    pub chunks: u32,
    pub records: u64,
}

/// The folder of a run's snapshot for a keying: `snapshot-hash` (whole-record hashes) or
/// `snapshot-key-<hash of the field name>`, so a task whose `key_field` changed gets a new
/// snapshot of the older run instead of comparing keys of two kinds.
pub fn snapshot_name(key_field: Option<&str>) -> String {
    match key_field {
        None => "snapshot-hash".to_owned(),
        Some(field) => format!("snapshot-key-{}", short_hash(field)),
    }
}

fn chunk_name(snapshot: &str, index: u32) -> String {
    format!("{snapshot}/{index:06}.snap")
}

/// Builds and stores the snapshot of a run from its page objects (in run order).
pub async fn build_snapshot(
    results: &ResultStore,
    run_id: &str,
    page_object_keys: Vec<String>,
    key_field: Option<&str>,
    options: &ChangeOptions,
) -> Result<Snapshot, ChangesError> {
    let name = snapshot_name(key_field);
    let spill_dir = tempfile::Builder::new()
        .prefix("selextract-changes-")
        .tempdir()?;
    let spills = sort_into_spills(
        results,
        page_object_keys,
        key_field,
        options,
        spill_dir.path(),
    )
    .await?;
    let chunk_records = options.snapshot_chunk_records.max(1);
    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(1);
    let merge = tokio::task::spawn_blocking(move || merge_spills(&spills, chunk_records, &sender));
    let mut chunks = 0u32;
    while let Some(body) = receiver.recv().await {
        results
            .put_change_object(run_id, &chunk_name(&name, chunks), body)
            .await?;
        chunks += 1;
    }
    let records = merge
        .await
        .map_err(|error| ChangesError::SortThread(error.to_string()))??;
    drop(spill_dir);
    Ok(Snapshot {
        run_id: run_id.to_owned(),
        name,
        chunks,
        records,
    })
}

/// Reads the run's records, keys them, and writes sorted buffers to spill files.
async fn sort_into_spills(
    results: &ResultStore,
    page_object_keys: Vec<String>,
    key_field: Option<&str>,
    options: &ChangeOptions,
    dir: &std::path::Path,
) -> Result<Vec<PathBuf>, ChangesError> {
    let mut records = Box::pin(results.stream_records(page_object_keys));
    let mut buffer: Vec<(String, u64, String)> = Vec::new();
    let mut buffered_bytes = 0usize;
    let mut spills = Vec::new();
    let mut position = 0u64;
    while let Some(record) = records.next().await {
        let (key, text) = record_entry(&record?, key_field);
        buffered_bytes += key.len() + text.len() + 64;
        buffer.push((key, position, text));
        position += 1;
        if buffer.len() >= options.sort_buffer_records.max(1)
            || buffered_bytes >= options.sort_buffer_bytes
        {
            let path = dir.join(format!("spill-{}.tsv", spills.len()));
            spills.push(spill(std::mem::take(&mut buffer), path).await?);
            buffered_bytes = 0;
        }
    }
    if !buffer.is_empty() {
        let path = dir.join(format!("spill-{}.tsv", spills.len()));
        spills.push(spill(buffer, path).await?);
    }
    Ok(spills)
}

async fn spill(
    mut buffer: Vec<(String, u64, String)>,
    path: PathBuf,
) -> Result<PathBuf, ChangesError> {
    tokio::task::spawn_blocking(move || -> Result<PathBuf, ChangesError> {
        buffer.sort_unstable_by(|left, right| {
            left.0
                .as_bytes()
                .cmp(right.0.as_bytes())
                .then(left.1.cmp(&right.1))
        });
        let mut out = BufWriter::new(File::create(&path)?);
        for (key, position, record) in &buffer {
            writeln!(out, "{key}\t{position}\t{record}")?;
        }
        out.flush()?;
        Ok(path)
    })
    .await
    .map_err(|error| ChangesError::SortThread(error.to_string()))?
}

/// The head line of one spill file in the merge heap.
struct Head {
    entry: Entry,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.entry.order(&other.entry)
    }
}

/// K-way merges the spill files (on a blocking thread) into snapshot chunk bodies sent to
/// `chunks`, numbering each key's occurrences; returns the number of records.
fn merge_spills(
    spills: &[PathBuf],
    chunk_records: usize,
    chunks: &mpsc::Sender<Vec<u8>>,
) -> Result<u64, ChangesError> {
    let mut readers = spills
        .iter()
        .map(|path| Ok(BufReader::new(File::open(path)?)))
        .collect::<Result<Vec<_>, ChangesError>>()?;
    let mut heap = BinaryHeap::new();
    for (source, reader) in readers.iter_mut().enumerate() {
        if let Some(entry) = read_line_entry(reader, "spill file")? {
            heap.push(Reverse(Head { entry, source }));
        }
    }
    let mut body = Vec::new();
    let mut in_chunk = 0usize;
    let mut records = 0u64;
    let mut last_key: Option<String> = None;
    let mut occurrence = 0u64;
    while let Some(Reverse(Head { entry, source })) = heap.pop() {
        if last_key.as_deref() == Some(entry.key.as_str()) {
            occurrence += 1;
        } else {
            occurrence = 1;
        }
        body.extend_from_slice(entry.key.as_bytes());
        body.push(b'\t');
        body.extend_from_slice(occurrence.to_string().as_bytes());
        body.push(b'\t');
        body.extend_from_slice(entry.record.as_bytes());
        body.push(b'\n');
        records += 1;
        in_chunk += 1;
        last_key = Some(entry.key);
        if in_chunk >= chunk_records {
            if chunks.blocking_send(std::mem::take(&mut body)).is_err() {
                // The receiving side stopped (its put failed); it reports its own error.
                return Ok(records);
            }
            in_chunk = 0;
        }
        if let Some(next) = read_line_entry(&mut readers[source], "spill file")? {
            heap.push(Reverse(Head {
                entry: next,
                source,
            }));
        }
    }
    if in_chunk > 0 {
        let _ = chunks.blocking_send(body);
    }
    Ok(records)
}

fn read_line_entry(reader: &mut impl BufRead, object: &str) -> Result<Option<Entry>, ChangesError> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    parse_entry(line.trim_end_matches('\n'), object).map(Some)
}

/// Parses one `key \t number \t record` line.
pub(crate) fn parse_entry(line: &str, object: &str) -> Result<Entry, ChangesError> {
    let corrupt = |reason: &str| ChangesError::Corrupt {
        object: object.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parts = line.splitn(3, '\t');
    let (Some(key), Some(number), Some(record)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("a line without three tab-separated parts"));
    };
    let occurrence = number
        .parse()
        .map_err(|_| corrupt("a line whose second part is not a number"))?;
    Ok(Entry {
        key: key.to_owned(),
        occurrence,
        record: record.to_owned(),
    })
}

/// Where entries come from in key order: a stored snapshot, or (in tests) a vector.
pub trait EntrySource {
    /// The next entry in snapshot order, `None` at the end.
    fn next_entry(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Entry>, ChangesError>> + Send;
}

impl EntrySource for std::vec::IntoIter<Entry> {
    async fn next_entry(&mut self) -> Result<Option<Entry>, ChangesError> {
        Ok(self.next())
    }
}

/// Reads a stored snapshot chunk by chunk (one chunk in memory).
pub struct SnapshotReader {
    results: ResultStore,
    snapshot: Snapshot,
    next_chunk: u32,
    lines: std::vec::IntoIter<String>,
    object: String,
}

impl SnapshotReader {
    pub fn new(results: &ResultStore, snapshot: Snapshot) -> Self {
        SnapshotReader {
            results: results.clone(),
            snapshot,
            next_chunk: 0,
            lines: Vec::new().into_iter(),
            object: String::new(),
        }
    }
}

impl EntrySource for SnapshotReader {
    async fn next_entry(&mut self) -> Result<Option<Entry>, ChangesError> {
        loop {
            if let Some(line) = self.lines.next() {
                return parse_entry(&line, &self.object).map(Some);
            }
            if self.next_chunk >= self.snapshot.chunks {
                return Ok(None);
            }
            let name = chunk_name(&self.snapshot.name, self.next_chunk);
            let body = self
                .results
                .get_change_object(&self.snapshot.run_id, &name)
                .await?;
            self.object = format!("runs/{}/changes/{name}", self.snapshot.run_id);
            let text = std::str::from_utf8(&body).map_err(|_| ChangesError::Corrupt {
                object: self.object.clone(),
                reason: "not UTF-8".to_owned(),
            })?;
            self.lines = text
                .lines()
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .into_iter();
            self.next_chunk += 1;
        }
    }
}

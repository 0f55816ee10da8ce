//! The per-record detail of a run's changes: one series of JSONL objects per kind,
//! `runs/{run}/changes/detail-{kind}/{index}.jsonl`, `detail_chunk_size` entries each, in
//! key order. A page of detail reads at most two objects per kind it touches.

use selextract_results::ResultStore;
use serde_json::Value;

use crate::{ChangesError, RunChanges};

/// The kind of a detail entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    /// Every kind, in the order an unfiltered listing walks them.
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Added, ChangeKind::Removed, ChangeKind::Changed];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }

    /// Parses `added`, `removed` or `changed`.
    pub fn parse(text: &str) -> Option<ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    fn index(self) -> usize {
        match self {
            ChangeKind::Added => 0,
            ChangeKind::Removed => 1,
            ChangeKind::Changed => 2,
        }
    }

    fn count(self, changes: &RunChanges) -> u64 {
        match self {
            ChangeKind::Added => changes.added,
            ChangeKind::Removed => changes.removed,
            ChangeKind::Changed => changes.changed,
        }
    }
}

fn chunk_name(kind: ChangeKind, index: u64) -> String {
    format!("detail-{}/{index:06}.jsonl", kind.as_str())
}

/// Buffers detail entries and writes each full chunk.
pub(crate) struct DetailWriter {
    results: ResultStore,
    run_id: String,
    chunk_size: usize,
    buffers: [Vec<u8>; 3],
    buffered: [usize; 3],
    written_chunks: [u64; 3],
}

impl DetailWriter {
    pub(crate) fn new(results: &ResultStore, run_id: &str, chunk_size: u32) -> Self {
        DetailWriter {
            results: results.clone(),
            run_id: run_id.to_owned(),
            chunk_size: usize::try_from(chunk_size.max(1)).unwrap_or(1000),
            buffers: Default::default(),
            buffered: [0; 3],
            written_chunks: [0; 3],
        }
    }

    pub(crate) async fn push(
        &mut self,
        kind: ChangeKind,
        entry: Value,
    ) -> Result<(), ChangesError> {
        let slot = kind.index();
        // A `Value` always serialises (its map keys are strings).
        self.buffers[slot].extend_from_slice(entry.to_string().as_bytes());
        self.buffers[slot].push(b'\n');
        self.buffered[slot] += 1;
        if self.buffered[slot] >= self.chunk_size {
            self.flush(kind).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, kind: ChangeKind) -> Result<(), ChangesError> {
        let slot = kind.index();
        if self.buffered[slot] == 0 {
            return Ok(());
        }
        let body = std::mem::take(&mut self.buffers[slot]);
        let name = chunk_name(kind, self.written_chunks[slot]);
        self.results
            .put_change_object(&self.run_id, &name, body)
            .await?;
        self.written_chunks[slot] += 1;
        self.buffered[slot] = 0;
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> Result<(), ChangesError> {
        for kind in ChangeKind::ALL {
            self.flush(kind).await?;
        }
        Ok(())
    }
}

/// One page of detail entries.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailPage {
    pub items: Vec<Value>,
    /// Pass as `cursor` for the next page; `None` at the end.
    pub next_cursor: Option<u64>,
}

/// Up to `limit` detail entries of the run from position `cursor`: of one kind, or (with
/// `kind` `None`) of all kinds, added first, then removed, then changed.
pub async fn read_detail(
    results: &ResultStore,
    changes: &RunChanges,
    kind: Option<ChangeKind>,
    cursor: u64,
    limit: usize,
) -> Result<DetailPage, ChangesError> {
    let kinds: Vec<ChangeKind> = match kind {
        Some(kind) => vec![kind],
        None => ChangeKind::ALL.to_vec(),
    };
    let total: u64 = kinds.iter().map(|kind| kind.count(changes)).sum();
    let chunk_size = u64::from(changes.detail_chunk_size.max(1));
    let mut items = Vec::new();
    let mut position = cursor;
    let mut loaded: Option<(ChangeKind, u64, Vec<String>)> = None;
    while position < total && items.len() < limit {
        let (kind, index) = locate(&kinds, changes, position);
        let chunk = index / chunk_size;
        let fresh = !matches!(&loaded, Some((k, c, _)) if *k == kind && *c == chunk);
        if fresh {
            let name = chunk_name(kind, chunk);
            let body = results.get_change_object(&changes.run_id, &name).await?;
            let text = String::from_utf8_lossy(&body);
            let lines = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            loaded = Some((kind, chunk, lines));
        }
        let Some((_, _, lines)) = &loaded else {
            break;
        };
        let line_index = usize::try_from(index % chunk_size).unwrap_or(usize::MAX);
        let Some(line) = lines.get(line_index) else {
            return Err(ChangesError::Corrupt {
                object: format!(
                    "runs/{}/changes/{}",
                    changes.run_id,
                    chunk_name(kind, chunk)
                ),
                reason: format!("entry {line_index} is missing"),
            });
        };
        let entry = serde_json::from_str(line).map_err(|error| ChangesError::Corrupt {
            object: format!(
                "runs/{}/changes/{}",
                changes.run_id,
                chunk_name(kind, chunk)
            ),
            reason: error.to_string(),
        })?;
        items.push(entry);
        position += 1;
    }
    Ok(DetailPage {
        items,
        next_cursor: (position < total).then_some(position),
    })
}

/// The kind and index within that kind of a position in the concatenation of `kinds`.
fn locate(kinds: &[ChangeKind], changes: &RunChanges, mut position: u64) -> (ChangeKind, u64) {
    for kind in kinds {
        let count = kind.count(changes);
        if position < count {
            return (*kind, position);
        }
        position -= count;
    }
    // Callers only pass positions below the total; the last kind is a safe answer.
    (kinds[kinds.len() - 1], position)
}

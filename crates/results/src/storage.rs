//! Run-record storage: each page's records as one JSONL object in an `object_store` store
//! (a local directory, S3, or memory for tests).
//!
//! Keys are `runs/{run_id}/pages/{page_key}.jsonl` below the store's prefix. A page that is
//! executed again (after a worker crash) is put under the same key and replaces the earlier
//! object whole: puts are atomic in every backend, so a reader sees the old page or the new
//! one, never a mix and never both. The order of a run's pages is not the store's business:
//! the caller keeps the keys in order (in the database) and passes them to
//! [`ResultStore::stream_records`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Map, Value};

use crate::StorageError;

/// One record as stored and exported.
pub type Record = Map<String, Value>;

/// The longest run id or page key accepted, so keys stay within every backend's limits.
const MAX_KEY_PART_LEN: usize = 200;

/// Where run records live. Cloning is cheap and clones share the store.
#[derive(Clone)]
pub struct ResultStore {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key; empty for a local directory (the directory is the root).
    prefix: ObjectPath,
    /// Shown in errors and logs instead of the store's own description.
    description: Arc<str>,
}

impl std::fmt::Debug for ResultStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResultStore")
            .field("location", &self.description)
            .finish_non_exhaustive()
    }
}

/// What [`ResultStore::put_page`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageObject {
    /// The object key, relative to the store's prefix; give it to `read_page` or
    /// `stream_records`.
    pub key: String,
    /// Size of the object in bytes.
    pub bytes: u64,
    /// Number of records in it.
    pub records: u64,
}

impl ResultStore {
    /// Opens the store a `RESULTS_URL` names: `file:///abs/dir` or a plain path (created if
    /// missing), `s3://bucket/prefix` (endpoint, region and credentials from the `AWS_*`
    /// environment variables), or `memory://` (a new empty in-process store, for tests).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        Self::from_url_with_options(url, &[])
    }

    /// Like [`ResultStore::from_url`], with S3 settings given explicitly on top of the
    /// environment's: `("aws_endpoint", "http://127.0.0.1:9000")`, `("aws_allow_http",
    /// "true")`, `("aws_access_key_id", …)`, any key object_store's `AmazonS3ConfigKey`
    /// accepts (case-insensitive). Ignored by the other schemes.
    pub fn from_url_with_options(
        url: &str,
        options: &[(&str, &str)],
    ) -> Result<Self, StorageError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Self::local(Path::new(url));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => Self::local(&file_url_to_path(url)?),
            "memory" => Ok(Self {
                store: Arc::new(InMemory::new()),
                prefix: ObjectPath::default(),
                description: Arc::from("memory://"),
            }),
            "s3" => open_s3(url, rest, options),
            _ => Err(StorageError::UnsupportedScheme {
                url: url.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Opens a local directory as the store, creating it if needed.
    pub fn local(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDirectory {
            path: dir.to_path_buf(),
            source,
        })?;
        // Automatic cleanup removes the directories a deleted run leaves empty; fsync makes a
        // page durable before the caller records it as done in the database.
        let store = LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            description: Arc::from(dir.display().to_string()),
        })
    }

    /// Write one page's records; returns (object key, bytes written). Idempotent: same
    /// run+page_key → same object, overwritten.
    pub async fn put_page(
        &self,
        run_id: &str,
        page_key: &str,
        records: &[Record],
    ) -> Result<PageObject, StorageError> {
        let key = page_object_key(run_id, page_key)?;
        let mut body = Vec::new();
        for record in records {
            serde_json::to_writer(&mut body, record).map_err(StorageError::Serialize)?;
            body.push(b'\n');
        }
        let bytes = body.len() as u64;
        self.store
            .put(&self.location(&key)?, PutPayload::from(body))
            .await?;
        Ok(PageObject {
            key,
            bytes,
            records: records.len() as u64,
        })
    }

    /// Reads back every record of one page object.
    pub async fn read_page(&self, object_key: &str) -> Result<Vec<Record>, StorageError> {
        let location = self.location(object_key)?;
        let body = match self.store.get(&location).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound {
                    key: object_key.to_owned(),
                });
            }
            Err(other) => return Err(other.into()),
        };
        parse_page(object_key, &body)
    }

    /// Stream every record of the given page objects, in the given order, with at most one
    /// page in memory. A page that cannot be read yields one error and the stream goes on
    /// with the next page; consumers that want all or nothing stop at the first error.
    pub fn stream_records(
        &self,
        object_keys: Vec<String>,
    ) -> impl Stream<Item = Result<Record, StorageError>> + Send + 'static {
        let store = self.clone();
        stream::iter(object_keys)
            .then(move |key| {
                let store = store.clone();
                async move { store.read_page(&key).await }
            })
            .flat_map(|page| match page {
                Ok(records) => stream::iter(records.into_iter().map(Ok)).left_stream(),
                Err(error) => stream::once(async { Err(error) }).right_stream(),
            })
    }

    /// Writes (or replaces) an object of the run's change detection, `runs/{run_id}/changes/{name}`
    /// (`name`: segments of `[A-Za-z0-9_.=-]` joined by `/`), so [`ResultStore::delete_run`]
    /// removes it with the run. Returns the object key.
    pub async fn put_change_object(
        &self,
        run_id: &str,
        name: &str,
        body: Vec<u8>,
    ) -> Result<String, StorageError> {
        let key = change_object_key(run_id, name)?;
        self.store
            .put(&self.location(&key)?, PutPayload::from(body))
            .await?;
        Ok(key)
    }

    /// Reads an object written by [`ResultStore::put_change_object`].
    pub async fn get_change_object(&self, run_id: &str, name: &str) -> Result<Bytes, StorageError> {
        let key = change_object_key(run_id, name)?;
        match self.store.get(&self.location(&key)?).await {
            Ok(found) => Ok(found.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound { key }),
            Err(other) => Err(other.into()),
        }
    }

    /// Deletes every object of a run (pages and change detection); a run with no objects is
    /// not an error.
    pub async fn delete_run(&self, run_id: &str) -> Result<(), StorageError> {
        check_key_part(run_id)?;
        let run_prefix = self.location(&format!("runs/{run_id}"))?;
        let locations = self
            .store
            .list(Some(&run_prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.store.delete_stream(locations);
        while let Some(outcome) = deleted.next().await {
            match outcome {
                // Deleted meanwhile by someone else: the goal is reached all the same.
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    /// For `/ready`: writes, reads back and deletes a small probe object.
    pub async fn check_writable(&self) -> Result<(), StorageError> {
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let probe_number = PROBES.fetch_add(1, Ordering::Relaxed);
        // Unique per process and call, so concurrent probes from many processes on one
        // bucket never delete each other's object.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let key = format!("probes/{}-{nanos}-{probe_number}.txt", std::process::id());
        let location = self.location(&key)?;
        let content = Bytes::from(key.clone().into_bytes());
        self.store
            .put(&location, PutPayload::from(content.clone()))
            .await?;
        let read_back = self.store.get(&location).await?.bytes().await?;
        self.store.delete(&location).await?;
        if read_back != content {
            return Err(StorageError::ProbeMismatch);
        }
        Ok(())
    }

    /// The full object path of a key: the store's prefix, then the key's segments.
    fn location(&self, key: &str) -> Result<ObjectPath, StorageError> {
        let relative = ObjectPath::parse(key).map_err(|_| StorageError::InvalidKey {
            key: key.to_owned(),
            reason: "not a valid object path",
        })?;
        if relative.parts().next().is_none() {
            return Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: "empty",
            });
        }
        Ok(self.prefix.parts().chain(relative.parts()).collect())
    }
}

/// `runs/{run_id}/pages/{page_key}.jsonl`, after checking both parts are single safe segments.
pub fn page_object_key(run_id: &str, page_key: &str) -> Result<String, StorageError> {
    check_key_part(run_id)?;
    check_key_part(page_key)?;
    Ok(format!("runs/{run_id}/pages/{page_key}.jsonl"))
}

/// `runs/{run_id}/changes/{name}`, after checking the run id and each segment of `name`.
pub fn change_object_key(run_id: &str, name: &str) -> Result<String, StorageError> {
    check_key_part(run_id)?;
    for segment in name.split('/') {
        check_key_part(segment)?;
    }
    Ok(format!("runs/{run_id}/changes/{name}"))
}

/// Run ids and page keys become path segments, in directories as well as in S3: allowing
/// only `[A-Za-z0-9_.=-]`, no leading dot, keeps them from escaping their run's directory,
/// from needing percent-encoding and from meaning different things on different backends.
fn check_key_part(part: &str) -> Result<(), StorageError> {
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: part.to_owned(),
            reason,
        })
    };
    if part.is_empty() {
        return invalid("empty");
    }
    if part.len() > MAX_KEY_PART_LEN {
        return invalid("longer than 200 bytes");
    }
    if part.starts_with('.') {
        return invalid("starts with a dot");
    }
    let allowed =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b'=');
    if !part.bytes().all(allowed) {
        return invalid("only letters, digits, `_`, `-`, `.` and `=` are allowed");
    }
    Ok(())
}

fn parse_page(key: &str, body: &[u8]) -> Result<Vec<Record>, StorageError> {
    body.split(|byte| *byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|source| StorageError::CorruptPage {
                key: key.to_owned(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

fn file_url_to_path(url: &str) -> Result<PathBuf, StorageError> {
    let invalid = |reason: String| StorageError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
    if parsed
        .host_str()
        .is_some_and(|host| !host.is_empty() && host != "localhost")
    {
        return Err(invalid(
            "a file URL must not name a host (use file:///abs/dir)".into(),
        ));
    }
    parsed
        .to_file_path()
        .map_err(|()| invalid("not an absolute local path".into()))
}

fn open_s3(url: &str, rest: &str, options: &[(&str, &str)]) -> Result<ResultStore, StorageError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: "no bucket name (expected s3://bucket/prefix)".into(),
        });
    }
    let prefix =
        ObjectPath::parse(prefix.trim_matches('/')).map_err(|error| StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
    let mut builder = AmazonS3Builder::from_env();
    for (key, value) in options {
        let key: AmazonS3ConfigKey =
            key.to_ascii_lowercase()
                .parse()
                .map_err(|_| StorageError::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("unknown S3 option `{key}`"),
                })?;
        builder = builder.with_config(key, *value);
    }
    let store = builder.with_bucket_name(bucket).build()?;
    Ok(ResultStore {
        store: Arc::new(store),
        prefix,
        description: Arc::from(url),
    })
}

//! Run-record storage: keys, idempotent puts, ordered streaming, deletion, probes, URLs.

use futures::StreamExt;
use selextract_results::{Record, ResultStore, StorageError, page_object_key};
use serde_json::json;

use crate::support::record;

fn page(run: &str, page: u64, count: u64) -> Vec<Record> {
    (0..count)
        .map(|index| record(json!({"run": run, "page": page, "index": index, "text": "ünïcode ✓"})))
        .collect()
}

fn stores() -> (tempfile::TempDir, Vec<ResultStore>) {
    let dir = tempfile::tempdir().unwrap();
    let local = ResultStore::local(&dir.path().join("results")).unwrap();
    let memory = ResultStore::from_url("memory://").unwrap();
    (dir, vec![local, memory])
}

#[tokio::test]
async fn a_put_page_reads_back_as_the_same_records_under_the_documented_key() {
    let (_dir, stores) = stores();
    for store in stores {
        let records = page("run-1", 7, 3);
        let written = store
            .put_page("run-1", "page-0007", &records)
            .await
            .unwrap();
        assert_eq!(written.key, "runs/run-1/pages/page-0007.jsonl");
        assert_eq!(written.records, 3);
        assert!(written.bytes > 0);
        assert_eq!(
            store.read_page(&written.key).await.unwrap(),
            records,
            "{store:?}"
        );
    }
}

#[tokio::test]
async fn a_local_store_keeps_each_page_as_a_jsonl_file_of_the_reported_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::local(dir.path()).unwrap();
    let records = page("r", 1, 2);
    let written = store.put_page("r", "p1", &records).await.unwrap();
    let on_disk = std::fs::read_to_string(dir.path().join("runs/r/pages/p1.jsonl")).unwrap();
    assert_eq!(on_disk.len() as u64, written.bytes);
    assert_eq!(on_disk.lines().count(), 2);
    let first: Record = serde_json::from_str(on_disk.lines().next().unwrap()).unwrap();
    assert_eq!(first, records[0]);
}

#[tokio::test]
async fn putting_a_page_again_replaces_it_instead_of_adding_records() {
    let (_dir, stores) = stores();
    for store in stores {
        let first = store
            .put_page("run", "p", &page("run", 1, 5))
            .await
            .unwrap();
        let rerun = page("run", 1, 2);
        let second = store.put_page("run", "p", &rerun).await.unwrap();
        assert_eq!(first.key, second.key);
        assert_eq!(second.records, 2);
        assert_eq!(
            store.read_page(&second.key).await.unwrap(),
            rerun,
            "{store:?}"
        );
    }
}

#[tokio::test]
async fn a_page_with_no_records_reads_back_empty() {
    let store = ResultStore::from_url("memory://").unwrap();
    let written = store.put_page("run", "empty", &[]).await.unwrap();
    assert_eq!((written.bytes, written.records), (0, 0));
    assert!(store.read_page(&written.key).await.unwrap().is_empty());
}

#[tokio::test]
async fn stream_records_yields_pages_in_the_order_given_not_the_order_written() {
    let (_dir, stores) = stores();
    for store in stores {
        let mut keys = Vec::new();
        for page_number in 1..=3 {
            let key = format!("p{page_number}");
            keys.push(
                store
                    .put_page("run", &key, &page("run", page_number, 2))
                    .await
                    .unwrap()
                    .key,
            );
        }
        keys.reverse();
        let streamed: Vec<Record> = store
            .stream_records(keys)
            .map(Result::unwrap)
            .collect()
            .await;
        let expected: Vec<Record> = [3, 2, 1]
            .into_iter()
            .flat_map(|n| page("run", n, 2))
            .collect();
        assert_eq!(streamed, expected, "{store:?}");
    }
}

#[tokio::test]
async fn stream_records_reports_a_missing_page_and_goes_on_with_the_next() {
    let store = ResultStore::from_url("memory://").unwrap();
    let present = store
        .put_page("run", "present", &page("run", 1, 1))
        .await
        .unwrap();
    let missing = page_object_key("run", "missing").unwrap();
    let items: Vec<_> = store
        .stream_records(vec![missing.clone(), present.key])
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(
        matches!(&items[0], Err(StorageError::NotFound { key }) if *key == missing),
        "{:?}",
        items[0]
    );
    assert_eq!(items[1].as_ref().unwrap(), &page("run", 1, 1)[0]);
}

#[tokio::test]
async fn reading_a_missing_page_is_not_found_rather_than_a_storage_failure() {
    let (_dir, stores) = stores();
    for store in stores {
        let error = store
            .read_page("runs/nope/pages/p.jsonl")
            .await
            .unwrap_err();
        assert!(matches!(error, StorageError::NotFound { .. }), "{error:?}");
    }
}

#[tokio::test]
async fn a_corrupt_page_is_an_error_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::local(dir.path()).unwrap();
    let written = store
        .put_page("run", "p", &page("run", 1, 1))
        .await
        .unwrap();
    let path = dir.path().join("runs/run/pages/p.jsonl");
    let mut content = std::fs::read_to_string(&path).unwrap();
    content.push_str("{not json\n");
    std::fs::write(&path, content).unwrap();
    let error = store.read_page(&written.key).await.unwrap_err();
    assert!(
        matches!(&error, StorageError::CorruptPage { key, line: 2, .. } if *key == written.key),
        "{error:?}"
    );
}

#[tokio::test]
async fn delete_run_removes_that_run_only() {
    let (_dir, stores) = stores();
    for store in stores {
        let doomed = store
            .put_page("run", "p1", &page("run", 1, 1))
            .await
            .unwrap();
        let doomed_too = store
            .put_page("run", "p2", &page("run", 2, 1))
            .await
            .unwrap();
        // "run-2" shares a textual prefix with "run" but is another run.
        let kept = store
            .put_page("run-2", "p1", &page("run-2", 1, 1))
            .await
            .unwrap();
        store.delete_run("run").await.unwrap();
        for key in [doomed.key, doomed_too.key] {
            let error = store.read_page(&key).await.unwrap_err();
            assert!(
                matches!(error, StorageError::NotFound { .. }),
                "{store:?} {error:?}"
            );
        }
        assert_eq!(store.read_page(&kept.key).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn delete_run_of_a_run_without_pages_succeeds() {
    let (_dir, stores) = stores();
    for store in stores {
        store.delete_run("never-ran").await.unwrap();
    }
}

#[tokio::test]
async fn delete_run_on_a_local_store_leaves_no_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::local(dir.path()).unwrap();
    store
        .put_page("run", "p1", &page("run", 1, 1))
        .await
        .unwrap();
    store.delete_run("run").await.unwrap();
    assert!(!dir.path().join("runs/run").exists());
}

#[tokio::test]
async fn run_ids_and_page_keys_that_could_escape_their_directory_are_refused() {
    let store = ResultStore::from_url("memory://").unwrap();
    for (run, page_key) in [
        ("..", "p"),
        ("run", "../x"),
        ("a/b", "p"),
        ("run", ""),
        ("run", ".hidden"),
        ("run", "p q"),
    ] {
        let error = store.put_page(run, page_key, &[]).await.unwrap_err();
        assert!(
            matches!(error, StorageError::InvalidKey { .. }),
            "{run} {page_key}: {error:?}"
        );
    }
    let error = store.delete_run("../other").await.unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidKey { .. }),
        "{error:?}"
    );
    let error = store.read_page("runs/../../etc/passwd").await.unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidKey { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn check_writable_succeeds_on_a_working_store_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::local(dir.path()).unwrap();
    store.check_writable().await.unwrap();
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
    ResultStore::from_url("memory://")
        .unwrap()
        .check_writable()
        .await
        .unwrap();
}

#[tokio::test]
async fn check_writable_fails_when_the_store_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("results");
    let store = ResultStore::local(&root).unwrap();
    // A file where the probe's directory must go: no permission trick, so it fails as root too.
    std::fs::write(root.join("probes"), b"in the way").unwrap();
    assert!(store.check_writable().await.is_err());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn from_url_names_an_unknown_scheme_in_its_error() {
    let error = ResultStore::from_url("ftp://example.invalid/results").unwrap_err();
    assert!(matches!(&error, StorageError::UnsupportedScheme { scheme, .. } if scheme == "ftp"));
    assert!(error.to_string().contains("`ftp`"), "{error}");
}

#[tokio::test]
async fn from_url_accepts_file_urls_and_plain_paths_for_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("by-url");
    let url = format!("file://{}", target.display());
    let by_url = ResultStore::from_url(&url).unwrap();
    let written = by_url
        .put_page("run", "p", &page("run", 1, 1))
        .await
        .unwrap();
    let by_path = ResultStore::from_url(target.to_str().unwrap()).unwrap();
    assert_eq!(
        by_path.read_page(&written.key).await.unwrap(),
        page("run", 1, 1)
    );
}

#[test]
fn from_url_refuses_file_urls_with_a_host_and_s3_urls_without_a_bucket() {
    let error = ResultStore::from_url("file://server/share").unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidUrl { .. }),
        "{error:?}"
    );
    let error = ResultStore::from_url("s3:///prefix").unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidUrl { .. }),
        "{error:?}"
    );
}

#[test]
fn from_url_builds_an_s3_store_without_contacting_it() {
    // Building only reads configuration; no request is made until an operation runs, and
    // this test runs none.
    let store = ResultStore::from_url("s3://selextract-test-bucket/some/prefix").unwrap();
    assert!(format!("{store:?}").contains("s3://selextract-test-bucket/some/prefix"));
}

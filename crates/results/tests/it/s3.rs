//! Results on S3-compatible storage, for real: a `moto` S3 server on a free loopback port
//! (installed by `scripts/ensure-test-services`), a bucket created over plain HTTP, and the
//! whole page lifecycle through `ResultStore::from_url_with_options("s3://bucket/prefix")`.

use futures::{StreamExt, TryStreamExt};
use selextract_results::{ExportFormat, Record, ResultStore, StorageError, export_stream};
use selextract_testkit::TestS3;
use serde_json::json;

use crate::support::record;

/// A moto S3 server (from the test kit) and a `ResultStore` on it.
struct Moto(TestS3);

impl Moto {
    fn start() -> Moto {
        Moto(TestS3::start())
    }

    fn create_bucket(&self, bucket: &str) {
        self.0.create_bucket(bucket);
    }

    fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.0.list_keys(bucket, prefix)
    }

    fn store(&self, url: &str) -> ResultStore {
        let options = self.0.options();
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ResultStore::from_url_with_options(url, &options).unwrap()
    }
}

fn records(range: std::ops::Range<u64>) -> Vec<Record> {
    range
        .map(|n| record(json!({"n": n, "title": format!("item {n}")})))
        .collect()
}

#[tokio::test]
async fn pages_round_trip_through_an_s3_compatible_server() {
    let moto = Moto::start();
    moto.create_bucket("selextract-results");
    let store = moto.store("s3://selextract-results/installs/one");

    let first = store
        .put_page("run-1", "s0-p0", &records(0..3))
        .await
        .unwrap();
    let second = store
        .put_page("run-1", "s0-p1", &records(3..5))
        .await
        .unwrap();
    store
        .put_page("run-2", "s0-p0", &records(9..10))
        .await
        .unwrap();
    assert_eq!(first.records, 3);

    // The objects really are in the bucket, below the URL's prefix.
    let mut keys = moto.list_keys("selextract-results", "installs/one/runs/run-1/");
    keys.sort();
    assert_eq!(
        keys,
        [
            "installs/one/runs/run-1/pages/s0-p0.jsonl",
            "installs/one/runs/run-1/pages/s0-p1.jsonl"
        ]
    );

    assert_eq!(store.read_page(&first.key).await.unwrap(), records(0..3));
    let streamed: Vec<Record> = store
        .stream_records(vec![first.key.clone(), second.key.clone()])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, records(0..5));

    let exported: Vec<u8> = export_stream(
        store.stream_records(vec![first.key.clone(), second.key.clone()]),
        ExportFormat::Jsonl,
        Vec::new(),
    )
    .map(|chunk| chunk.unwrap().to_vec())
    .concat()
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["n"], 4);

    store.check_writable().await.unwrap();

    store.delete_run("run-1").await.unwrap();
    assert!(matches!(
        store.read_page(&first.key).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(
        moto.list_keys("selextract-results", "installs/one/runs/run-1/")
            .is_empty()
    );
    // Another run's pages are untouched.
    assert_eq!(
        moto.list_keys("selextract-results", "installs/one/runs/run-2/")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_page_put_again_replaces_the_object_in_s3() {
    let moto = Moto::start();
    moto.create_bucket("rerun");
    let store = moto.store("s3://rerun");
    let page = store.put_page("run", "p", &records(0..4)).await.unwrap();
    let again = store.put_page("run", "p", &records(10..12)).await.unwrap();
    assert_eq!(page.key, again.key);
    assert_eq!(store.read_page(&again.key).await.unwrap(), records(10..12));
    assert_eq!(moto.list_keys("rerun", "runs/").len(), 1);
}

#[tokio::test]
async fn a_missing_bucket_is_a_storage_error_not_a_missing_page() {
    let moto = Moto::start();
    let store = moto.store("s3://no-such-bucket/prefix");
    let error = store
        .put_page("run", "p", &records(0..1))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::ObjectStore(_)), "{error:?}");
}

#[test]
fn an_unknown_s3_option_is_refused_with_its_name() {
    let error = ResultStore::from_url_with_options("s3://bucket", &[("aws_no_such_thing", "1")])
        .unwrap_err();
    assert!(error.to_string().contains("aws_no_such_thing"), "{error}");
}

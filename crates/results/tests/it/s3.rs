//! Results on S3-compatible storage, for real: a `moto` S3 server on a free loopback port
//! (installed by `scripts/ensure-test-services`), a bucket created over plain HTTP, and the
//! whole page lifecycle through `ResultStore::from_url_with_options("s3://bucket/prefix")`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use selextract_results::{ExportFormat, Record, ResultStore, StorageError, export_stream};
use serde_json::json;

use crate::support::record;

/// A `moto_server` child process, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `scripts/ensure-test-services` installs moto (a virtualenv under the workspace's
/// `target/`), known at compile time so the test does not depend on the shell.
fn moto_server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-services/moto/bin/moto_server")
}

impl Moto {
    fn start() -> Moto {
        let binary = moto_server_binary();
        assert!(
            binary.exists(),
            "moto is not installed at {}: run scripts/ensure-test-services",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(port, "GET", "/").is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}")).unwrap();
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// Object keys in `bucket` below `prefix`, from S3 ListObjectsV2.
    fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    fn store(&self, url: &str) -> ResultStore {
        let endpoint = self.endpoint();
        ResultStore::from_url_with_options(
            url,
            &[
                ("aws_endpoint", endpoint.as_str()),
                ("aws_allow_http", "true"),
                ("aws_region", "us-east-1"),
                ("aws_access_key_id", "selextract-test"),
                ("aws_secret_access_key", "selextract-test-secret"),
            ],
        )
        .unwrap()
    }
}

/// One unauthenticated HTTP/1.1 request to moto on loopback; returns (status, body).
fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
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

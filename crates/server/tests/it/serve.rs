//! `serve` on a real listener on 127.0.0.1:0: client addresses reach `/metrics`, and
//! graceful shutdown is not held up by an open event stream.

use std::time::Duration;

use selextract_server::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, both_backends};

async fn send_get(stream: &mut TcpStream, path: &str, key: Option<&str>) {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

async fn read_to_end(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

both_backends!(serve_answers_over_tcp_and_shuts_down_gracefully_despite_an_open_event_stream);
async fn serve_answers_over_tcp_and_shuts_down_gracefully_despite_an_open_event_stream() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "never runs").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app.state.clone(), shutdown.clone()));

    let mut health = TcpStream::connect(addr).await.unwrap();
    send_get(&mut health, "/health", None).await;
    let response = read_to_end(&mut health).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-request-id:"),
        "{response}"
    );

    // The real TCP peer is 127.0.0.1, which the default allow-list admits.
    let mut metrics = TcpStream::connect(addr).await.unwrap();
    send_get(&mut metrics, "/metrics", None).await;
    let response = read_to_end(&mut metrics).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // A task that never runs: its event stream would stay open forever.
    let mut events = TcpStream::connect(addr).await.unwrap();
    send_get(
        &mut events,
        &format!("/api/v1/tasks/{task_id}/events"),
        Some(&user.key),
    )
    .await;
    let mut head = [0u8; 64];
    let read = events.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..read]).starts_with("HTTP/1.1 200"));

    shutdown.cancel();
    let served = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve returned after shutdown");
    served.unwrap().unwrap();
    // The stream was ended by the server, not left hanging, and said why.
    let rest = read_to_end(&mut events).await;
    assert!(!rest.contains("event: done"), "{rest}");
    assert!(rest.contains("event: end"), "{rest}");
    assert!(rest.contains(r#"{"reason":"shutdown"}"#), "{rest}");
}

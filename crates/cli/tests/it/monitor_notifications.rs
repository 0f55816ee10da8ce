//! Change notifications end to end (issue 12 proof, "the webhook and e-mail carry them"):
//! the monitor task of `monitors.rs` with `notify` = a real webhook receiver on 127.0.0.1
//! and an e-mail address, `on: ["changed"]`, run twice by a real `serve` whose `[smtp]` is
//! the testkit's SMTP sink. The baseline run notifies nothing; the second run sends exactly
//! one `changes.detected` webhook, signed with the user's secret, whose `changes` carry the
//! counts and the exact records and fields that changed, and one e-mail whose plain-text
//! and HTML parts name the counts and the changed values.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use selextract_testkit::{ReceivedMail, SmtpSink};
use serde_json::{Value, json};

use crate::monitors::{ChangingPage, page};
use crate::support::{Api, run_ok, start_server};

/// One request the receiver was sent: lower-cased header names, the raw body.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1 that answers 204 and keeps every request.
struct WebhookReceiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/hooks/selextract",
            listener.local_addr().expect("addr")
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                // The request line, then headers up to the blank line.
                let _ = reader.read_line(&mut line);
                loop {
                    line.clear();
                    if !reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        break;
                    }
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = trimmed.split_once(':') {
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                    }
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                kept.lock()
                    .expect("receiver lock")
                    .push(Received { headers, body });
                let _ = stream.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        WebhookReceiver { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }
}

/// Standard base64 (with padding, whitespace ignored), as the e-mail parts are encoded.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {:?}", other as char),
        }
    };
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The decoded body of the part whose `Content-Type` starts with `content_type`.
fn mail_part(mail: &ReceivedMail, content_type: &str) -> String {
    let start = mail
        .data
        .find(&format!("Content-Type: {content_type}"))
        .unwrap_or_else(|| panic!("no {content_type} part in:\n{}", mail.data));
    let head_end = start + mail.data[start..].find("\r\n\r\n").expect("part head") + 4;
    let head = &mail.data[start..head_end];
    let body_end = head_end + mail.data[head_end..].find("\r\n--").expect("part end");
    let body = &mail.data[head_end..body_end];
    let decoded = if head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: base64")
    {
        String::from_utf8(decode_base64(body)).expect("utf-8 part")
    } else {
        body.to_owned()
    };
    decoded.replace("\r\n", "\n")
}

/// The caller's deliveries of `task_id`, once none is pending (polled, 60 s at most).
async fn settled_deliveries(api: &Api, task_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = api
            .get_json(&format!("/api/v1/deliveries?task_id={task_id}&limit=100"))
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() && items.iter().all(|d| d["state"] != "pending") {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of {task_id} still pending (or none) after 60 s: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitors_changes_reach_the_webhook_signed_and_the_email_with_the_changed_records() {
    let site = ChangingPage::start(&page(&[
        ("Apple", "1.00", "in"),
        ("Banana", "2.00", "in"),
        ("Cherry", "3.00", "in"),
        ("Date", "4.00", "in"),
    ]));
    let receiver = WebhookReceiver::start();
    let sink = SmtpSink::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"Selextract <noreply@example.com>\"\n\
             [notifications]\ninitial_backoff_ms = 200\nmax_backoff_seconds = 2\n\
             poll_interval_ms = 100\nsweep_interval_ms = 500\n",
            sink.port()
        ),
    )
    .expect("config written");
    run_ok(data.path(), &["migrate"]);
    run_ok(
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "notified@example.com",
            "--plan",
            "self-hosted",
        ],
    );
    let key = run_ok(
        data.path(),
        &["key", "create", "--email", "notified@example.com"],
    )
    .trim()
    .to_owned();
    let server = start_server(
        data.path(),
        &[
            "--allow-private-networks",
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    let api = Api::new(&server.base, &key);

    let spec = json!({
        "name": "Fruit prices",
        "start_urls": [site.url],
        "item_selector": "li.item",
        "fields": [
            {"name": "title", "selector": ".name", "type": "text"},
            {"name": "price", "selector": ".price", "type": "text"},
            {"name": "stock", "selector": ".stock", "type": "text"}
        ],
        "respect_robots_txt": false,
        "schedule": {"cron": "0 0 1 1 *", "key_field": "title"},
        "notify": {
            "webhook_url": receiver.url,
            "email": "watcher@example.com",
            "on": ["changed"]
        }
    });
    let (status, task) = api.post_json("/api/v1/tasks", &spec).await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let first = task["latest_run"]["id"]
        .as_str()
        .expect("first run")
        .to_owned();
    let done = api.wait_terminal(&first, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "completed", "{done}");

    // The baseline (everything added, below no threshold to compare with) notifies nothing:
    // its outcome, deliveries included, is written when it ends.
    let baseline = api.get_json(&format!("/api/v1/runs/{first}/changes")).await;
    assert_eq!(baseline["summary"]["passed_threshold"], false, "{baseline}");
    let page_after_first = api
        .get_json(&format!("/api/v1/deliveries?task_id={task_id}"))
        .await;
    assert_eq!(page_after_first["items"], json!([]), "{page_after_first}");

    site.set(&page(&[
        ("Apple", "1.00", "in"),
        ("Banana", "2.50", "in"),
        ("Date", "4.00", "out"),
        ("E & <Friends>", "5.00", "in"),
    ]));
    let (status, run) = api
        .post_json(&format!("/api/v1/tasks/{task_id}/runs"), &json!({}))
        .await;
    assert!(status == 201 || status == 202, "{status}: {run}");
    let second = run["id"].as_str().expect("second run").to_owned();
    let done = api.wait_terminal(&second, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "completed", "{done}");

    // Both deliveries settle as delivered: exactly one webhook and one e-mail, both
    // changes.detected of the second run.
    let deliveries = settled_deliveries(&api, &task_id).await;
    let mut kinds: Vec<(String, String, String, String)> = deliveries
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("channel"), s("event"), s("run_id"), s("state"))
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            (
                "email".to_owned(),
                "changes.detected".to_owned(),
                second.clone(),
                "delivered".to_owned()
            ),
            (
                "webhook".to_owned(),
                "changes.detected".to_owned(),
                second.clone(),
                "delivered".to_owned()
            ),
        ],
        "{deliveries:?}"
    );

    // The webhook: one request, signed with the user's secret.
    let requests = receiver.received();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let hook = &requests[0];
    assert_eq!(
        hook.headers.get("x-selextract-event").map(String::as_str),
        Some("changes.detected"),
        "{:?}",
        hook.headers
    );
    let secret = api.get_json("/api/v1/account/webhook-secret").await;
    let secret = secret["secret"].as_str().expect("secret").to_owned();
    let signature = hook
        .headers
        .get("x-selextract-signature")
        .expect("X-Selextract-Signature header");
    let now = crate::support_now() / 1000;
    selextract_notify::verify_signature(
        &secret,
        signature,
        &hook.body,
        now,
        Duration::from_secs(600),
    )
    .unwrap_or_else(|error| panic!("signature {signature:?} does not verify: {error:?}"));
    assert!(
        selextract_notify::verify_signature(
            "not-the-secret",
            signature,
            &hook.body,
            now,
            Duration::from_secs(600)
        )
        .is_err(),
        "a wrong secret verifies"
    );

    // Its body: the second run, the counts and the exact changed records and fields.
    let document: Value = serde_json::from_slice(&hook.body).expect("JSON webhook body");
    assert_eq!(document["type"], "changes.detected", "{document}");
    assert_eq!(document["task"]["id"], task_id.as_str());
    assert_eq!(document["run"]["id"], second.as_str());
    let changes = &document["changes"];
    assert_eq!(changes["previous_run_id"], first.as_str(), "{changes}");
    assert_eq!(changes["key_field"], "title");
    assert_eq!(
        [
            &changes["added"],
            &changes["removed"],
            &changes["changed"],
            &changes["unchanged"],
            &changes["previous_records"],
            &changes["records"]
        ],
        [
            &json!(1),
            &json!(1),
            &json!(2),
            &json!(1),
            &json!(4),
            &json!(4)
        ],
        "{changes}"
    );
    assert_eq!(changes["passed_threshold"], true);
    let expected_sample = vec![
        json!({"kind": "added", "key": "\"E & <Friends>\"", "record": {"price": "5.00", "stock": "in", "title": "E & <Friends>"}, "previous": null, "fields": []}),
        json!({"kind": "removed", "key": "\"Cherry\"", "record": null, "previous": {"price": "3.00", "stock": "in", "title": "Cherry"}, "fields": []}),
        json!({"kind": "changed", "key": "\"Banana\"", "record": {"price": "2.50", "stock": "in", "title": "Banana"}, "previous": {"price": "2.00", "stock": "in", "title": "Banana"}, "fields": [{"field": "price", "old": "2.00", "new": "2.50"}]}),
        json!({"kind": "changed", "key": "\"Date\"", "record": {"price": "4.00", "stock": "out", "title": "Date"}, "previous": {"price": "4.00", "stock": "in", "title": "Date"}, "fields": [{"field": "stock", "old": "in", "new": "out"}]}),
    ];
    assert_eq!(
        changes["sample"].as_array(),
        Some(&expected_sample),
        "the webhook's changes.sample: {changes}"
    );
    // The same entries as the API's detail.
    let detail = api
        .get_json(&format!("/api/v1/runs/{second}/changes"))
        .await;
    assert_eq!(detail["items"].as_array(), Some(&expected_sample));

    // The e-mail: to the task's address, with a plain-text and an HTML part.
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["watcher@example.com".to_owned()]);
    let subject = mail.header("Subject").unwrap_or_default();
    assert!(subject.contains("Fruit prices"), "{subject}");
    let text = mail_part(mail, "text/plain");
    let html = mail_part(mail, "text/html");
    assert!(
        text.contains("1 added, 1 removed, 2 changed, 1 unchanged"),
        "{text}"
    );
    assert!(text.contains(&second), "{text}");
    assert!(
        text.contains(&format!("Compared with run: {first}")),
        "{text}"
    );
    for needle in [
        r#"added "E & <Friends>""#,
        r#"removed "Cherry""#,
        r#"changed "Banana""#,
        r#"{"field":"price","old":"2.00","new":"2.50"}"#,
        r#"changed "Date""#,
        r#"{"field":"stock","old":"in","new":"out"}"#,
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} not in the text part:\n{text}"
        );
    }
    assert!(
        html.contains("1 added, 1 removed, 2 changed, 1 unchanged"),
        "{html}"
    );
    // In the HTML, every text of the records is escaped.
    for needle in [
        "added &quot;E &amp; &lt;Friends&gt;&quot;",
        "removed &quot;Cherry&quot;",
        "changed &quot;Banana&quot;",
        "{&quot;field&quot;:&quot;price&quot;,&quot;old&quot;:&quot;2.00&quot;,&quot;new&quot;:&quot;2.50&quot;}",
        "changed &quot;Date&quot;",
        "{&quot;field&quot;:&quot;stock&quot;,&quot;old&quot;:&quot;in&quot;,&quot;new&quot;:&quot;out&quot;}",
    ] {
        assert!(
            html.contains(needle),
            "{needle:?} not in the HTML part:\n{html}"
        );
    }
    assert!(
        !html.contains("<Friends>"),
        "the record's text reaches the HTML unescaped:\n{html}"
    );
}

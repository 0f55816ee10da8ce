//! E-mail deliveries through the testkit's SMTP sink: plain text and HTML with the change
//! summary, everything a user typed escaped, nothing reaching a header.

use base64::Engine;
use selextract_mail::{Mailer, SmtpConfig, TlsMode};
use selextract_store::testing::{Backend, test_store};
use selextract_store::{DeliveryState, RunState};
use selextract_testkit::{ReceivedMail, SmtpSink};
use serde_json::json;

use crate::support::{
    changes, config, deliveries, deps, finished_run, finished_run_with_sample, task, user,
};

pub fn sink_mailer(sink: &SmtpSink) -> Mailer {
    Mailer::from_config(&SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: Some(sink.port()),
        tls: TlsMode::None,
        from: "Selextract <noreply@sx.example>".to_owned(),
        ..SmtpConfig::default()
    })
    .unwrap()
}

/// The decoded text/plain and text/html parts of a multipart message (LF line ends).
pub fn parts(mail: &ReceivedMail) -> (String, String) {
    let part = |content_type: &str| {
        let start = mail
            .data
            .find(&format!("Content-Type: {content_type}"))
            .expect(content_type);
        let body_start = start + mail.data[start..].find("\r\n\r\n").unwrap() + 4;
        let body_end = body_start + mail.data[body_start..].find("\r\n--").unwrap();
        let encoded: String = mail.data[body_start..body_end].split_whitespace().collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
        .replace("\r\n", "\n")
    };
    (part("text/plain"), part("text/html"))
}

selextract_store::both_backends!(an_email_delivery_carries_the_change_summary_in_text_and_html);
async fn an_email_delivery_carries_the_change_summary_in_text_and_html(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let sink = SmtpSink::start().await;
    let config = config(&[]);
    let alice = user(&store, "alice@example.com").await;
    let name = "<script>alert('x')</script>\r\nBcc: victim@example.com";
    let books = task(
        &store,
        &alice,
        name,
        json!({"email": "ops@example.com", "on": ["changed"]}),
    )
    .await;
    let sample = [
        json!({"kind": "changed", "key": "sku-1", "fields": {"price": {"old": "9.99", "new": "<b>7.99</b>"}}}),
        json!({"kind": "added", "key": "sku-9", "record": {"title": "x".repeat(5000)}}),
    ];
    let ids = finished_run_with_sample(
        &store,
        &books,
        RunState::Completed,
        Some(&changes(&books)),
        &config,
        &sample,
    )
    .await;
    assert_eq!(ids.len(), 1);
    let deps = deps("p1", sink_mailer(&sink));
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        1
    );

    let mail = sink
        .wait_for_message_to("ops@example.com", crate::support::GIVE_UP_AFTER)
        .await;
    assert_eq!(mail.to, ["ops@example.com"]);
    assert_eq!(
        mail.header("Bcc"),
        None,
        "the task name never becomes a header"
    );
    let subject = mail.header("Subject").unwrap();
    assert!(subject.contains("Changes detected"), "{subject}");
    let (text, html) = parts(&mail);
    assert!(
        text.contains("Changes: 3 added, 1 removed, 2 changed, 37 unchanged"),
        "{text}"
    );
    assert!(
        text.contains("Task: <script>alert('x')</script>  Bcc: victim@example.com\n"),
        "{text}"
    );
    assert!(text.contains("https://sx.example/api/v1/runs/"));
    assert!(html.contains("3 added, 1 removed, 2 changed"), "{html}");
    assert!(
        text.contains(
            r#"Change 1: changed sku-1: {"fields":{"price":{"old":"9.99","new":"<b>7.99</b>"}}}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"Change 2: added sku-9: {"truncated":true}"#),
        "an oversized entry keeps its kind and key: {text}"
    );
    assert!(
        html.contains("&lt;b&gt;7.99&lt;/b&gt;") && !html.contains("<b>7.99"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{html}"
    );
    let all = deliveries(&store, &alice).await;
    assert_eq!(all[0].state, DeliveryState::Delivered);
    assert_eq!(all[0].channel, "email");
}

selextract_store::both_backends!(an_email_delivery_without_smtp_fails_permanently);
async fn an_email_delivery_without_smtp_fails_permanently(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let config = config(&[]);
    let alice = user(&store, "alice@example.com").await;
    let books = task(
        &store,
        &alice,
        "books",
        json!({"email": "ops@example.com", "on": ["completed"]}),
    )
    .await;
    let ids = finished_run(&store, &books, RunState::Completed, None, &config).await;
    let deps = deps("p1", Mailer::disabled());
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        1
    );
    let (delivery, attempts) = store
        .get_delivery(&alice.id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Failed);
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not configured")
    );
}

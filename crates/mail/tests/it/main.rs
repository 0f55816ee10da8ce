//! The mailer against the test kit's SMTP sink: what arrives, and what is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use selextract_accounts::Email;
use selextract_config::SecretString;
use selextract_mail::{
    MailError, Mailer, MailerBuildError, Message, SmtpConfig, TlsMode, messages,
};
use selextract_testkit::{SMTP_WAIT, SmtpSink};

fn sink_config(sink: &SmtpSink) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: Some(sink.port()),
        tls: TlsMode::None,
        from: "Selextract Test <noreply@selextract.test>".to_owned(),
        timeout: Duration::from_secs(10),
        ..SmtpConfig::default()
    }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

#[tokio::test]
async fn a_reset_message_arrives_with_its_envelope_headers_and_link() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    assert!(mailer.is_configured());
    let link = format!(
        "http://127.0.0.1:8000/account/reset-password?token={}",
        "A".repeat(43)
    );
    mailer
        .send(
            &email("Alice@Example.com"),
            &messages::password_reset(&link, "1 hour"),
        )
        .await
        .unwrap();
    let mail = sink.wait_for_message(SMTP_WAIT).await;
    assert_eq!(mail.from, "noreply@selextract.test");
    assert_eq!(mail.to, vec!["alice@example.com".to_owned()]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Reset your Selextract password")
    );
    assert_eq!(mail.header("To").as_deref(), Some("alice@example.com"));
    assert!(
        mail.header("From")
            .unwrap()
            .contains("noreply@selextract.test"),
        "{mail:?}"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    // The link is longer than a mail line, so it travels quoted-printable; decoded it is whole.
    assert_eq!(mail.first_link().as_deref(), Some(link.as_str()));
    assert_eq!(mail.auth, None);
}

#[tokio::test]
async fn unconfigured_mail_refuses_to_send_with_a_clear_error() {
    let mailer = Mailer::from_config(&SmtpConfig::default()).unwrap();
    assert!(!mailer.is_configured());
    let error = mailer
        .send(
            &email("a@b.c"),
            &messages::verify_email("http://x/", "1 day"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::NotConfigured));
    assert!(error.to_string().contains("smtp.host"), "{error}");
    assert!(!Mailer::disabled().is_configured());
}

#[tokio::test]
async fn starttls_is_required_and_a_server_without_it_gets_nothing() {
    let sink = SmtpSink::start().await;
    let config = SmtpConfig {
        tls: TlsMode::Starttls,
        username: "user".to_owned(),
        password: Some(SecretString::from("secret-password")),
        ..sink_config(&sink)
    };
    let mailer = Mailer::from_config(&config).unwrap();
    let error = mailer
        .send(
            &email("a@b.c"),
            &messages::invitation("http://x/", "7 days"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Smtp(_)), "{error:?}");
    assert!(!error.to_string().contains("secret-password"));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn credentials_are_sent_with_auth_plain() {
    let sink = SmtpSink::start().await;
    let config = SmtpConfig {
        username: "mailer".to_owned(),
        password: Some(SecretString::from("pw")),
        ..sink_config(&sink)
    };
    let mailer = Mailer::from_config(&config).unwrap();
    mailer
        .send(
            &email("a@b.c"),
            &messages::invitation("http://x/", "7 days"),
        )
        .await
        .unwrap();
    let mail = sink.wait_for_message(SMTP_WAIT).await;
    // base64("\0mailer\0pw")
    assert_eq!(mail.auth.as_deref(), Some("AG1haWxlcgBwdw=="));
}

#[tokio::test]
async fn a_refused_recipient_is_an_smtp_error() {
    let sink = SmtpSink::start().await;
    sink.reject_recipients(true);
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    let error = mailer
        .send(
            &email("a@b.c"),
            &messages::verify_email("http://x/", "1 day"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Smtp(_)), "{error:?}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_dead_server_is_an_smtp_error_within_the_timeout() {
    let config = SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: Some(selextract_testkit::free_port()),
        tls: TlsMode::None,
        ..SmtpConfig::default()
    };
    let mailer = Mailer::from_config(&config).unwrap();
    let error = mailer
        .send(
            &email("a@b.c"),
            &messages::verify_email("http://x/", "1 day"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Smtp(_)), "{error:?}");
}

#[tokio::test]
async fn lines_starting_with_a_dot_survive_dot_stuffing() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    let body = "first\n.\n..two dots\n.hidden\nlast\n";
    mailer
        .send(
            &email("a@b.c"),
            &Message {
                subject: "dots".to_owned(),
                body: body.to_owned(),
            },
        )
        .await
        .unwrap();
    let mail = sink.wait_for_message(SMTP_WAIT).await;
    // lettre ends the data with CRLF "." CRLF after the body's own last line end, which
    // adds one empty line.
    assert_eq!(mail.text().trim_end(), body.trim_end());
}

#[tokio::test]
async fn a_header_injection_in_the_subject_stays_inside_the_subject() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    mailer
        .send(
            &email("a@b.c"),
            &Message {
                subject: "hi\r\nBcc: eve@evil.test\r\n\r\nforged body".to_owned(),
                body: "real body\n".to_owned(),
            },
        )
        .await
        .unwrap();
    let mail = sink.wait_for_message(SMTP_WAIT).await;
    assert_eq!(mail.to, vec!["a@b.c".to_owned()]);
    assert_eq!(mail.header("Bcc"), None, "{}", mail.data);
    assert_eq!(mail.text().trim_end(), "real body");
}

#[tokio::test]
async fn unicode_addresses_reach_the_server() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    mailer
        .send(
            &email("Jürgen@Bücher.DE"),
            &messages::verify_email("http://x/", "1 day"),
        )
        .await
        .unwrap();
    let mail = sink.wait_for_message(SMTP_WAIT).await;
    assert_eq!(mail.to, vec!["jürgen@bücher.de".to_owned()]);
}

#[tokio::test]
async fn addresses_with_line_breaks_never_become_an_email() {
    for raw in ["a@b.c\r\nBcc: x@y", "a@b.c\nRCPT TO:<x@y>", "a@b.c\0"] {
        assert!(Email::parse(raw).is_err(), "{raw:?}");
    }
}

#[test]
fn a_bad_from_address_names_its_key() {
    for from in ["not an address", "", "a@b.c\r\nBcc: x@y"] {
        let config = SmtpConfig {
            from: from.to_owned(),
            ..SmtpConfig::default()
        };
        let error = Mailer::from_config(&config).unwrap_err();
        assert!(matches!(error, MailerBuildError::InvalidFrom(_)));
        assert!(error.to_string().contains("smtp.from"), "{error}");
    }
}

#[tokio::test]
async fn several_messages_arrive_in_order_over_separate_connections() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::from_config(&sink_config(&sink)).unwrap();
    for n in 0..3 {
        mailer
            .send(
                &email(&format!("user{n}@example.com")),
                &messages::verify_email(&format!("http://x/{n}"), "1 day"),
            )
            .await
            .unwrap();
    }
    let all = sink.wait_for_messages(3, SMTP_WAIT).await;
    let links: Vec<_> = all.iter().map(|m| m.first_link().unwrap()).collect();
    assert_eq!(links, ["http://x/0", "http://x/1", "http://x/2"]);
    assert_eq!(sink.messages_to("USER1@example.com").len(), 1);
}

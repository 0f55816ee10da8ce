#![allow(clippy::unwrap_used)]

use super::*;

const SECRET: &[u8] = b"whsec-test";

fn subscription_body(event: &str) -> String {
    json_body(
        event,
        r#"{"type":"subscriptions","id":"1","attributes":{"store_id":1,"customer_id":9,
        "order_id":3,"variant_id":11,"status":"active","cancelled":false,"pause":null,
        "renews_at":"2026-01-01T00:00:00.000000Z","ends_at":null,"trial_ends_at":null,
        "created_at":"2025-12-01T00:00:00.000000Z","updated_at":"2025-12-01T00:00:01.000000Z",
        "urls":{"update_payment_method":"https://x/pm","customer_portal":"https://x/portal"}}}"#,
    )
}

fn json_body(event: &str, data: &str) -> String {
    format!(
        r#"{{"meta":{{"test_mode":true,"event_name":"{event}","custom_data":{{"user_id":"u-1"}}}},"data":{data}}}"#
    )
}

#[test]
fn a_signature_over_the_raw_body_verifies_and_any_change_does_not() {
    let body = subscription_body("subscription_created");
    let signature = sign(SECRET, body.as_bytes());
    assert_eq!(signature.len(), 64);
    assert_eq!(
        verify_signature(SECRET, body.as_bytes(), Some(&signature)),
        Ok(())
    );
    // The same JSON re-serialised (one space more) is another body.
    let respaced = body.replacen(':', ": ", 1);
    assert_eq!(
        verify_signature(SECRET, respaced.as_bytes(), Some(&signature)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"other", body.as_bytes(), Some(&signature)),
        Err(SignatureError::Mismatch)
    );
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(
        verify_signature(SECRET, body.as_bytes(), Some(&flipped)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(SECRET, body.as_bytes(), None),
        Err(SignatureError::Missing)
    );
    for bad in ["", "zz", &signature[..62], "é", &format!("{signature}00")] {
        assert_eq!(
            verify_signature(SECRET, body.as_bytes(), Some(bad)),
            Err(SignatureError::Malformed),
            "{bad:?}"
        );
    }
    // Upper-case hex is the same MAC.
    assert_eq!(
        verify_signature(SECRET, body.as_bytes(), Some(&signature.to_uppercase())),
        Ok(())
    );
}

#[test]
fn a_known_hmac_vector_matches() {
    // RFC 4231 test case 2.
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn subscription_events_parse_into_subscriptions() {
    let event = parse_event(subscription_body("subscription_created").as_bytes()).unwrap();
    assert_eq!(event.name, EventName::SubscriptionCreated);
    assert_eq!(event.user_id.as_deref(), Some("u-1"));
    assert!(event.test_mode);
    let WebhookObject::Subscription(sub) = event.object else {
        panic!("not a subscription: {event:?}");
    };
    assert_eq!(sub.id, "1");
    assert_eq!(sub.variant_id, 11);
    assert_eq!(sub.customer_id.as_deref(), Some("9"));
    assert_eq!(sub.updated_at_ms, 1_764_547_201_000);
    assert_eq!(
        sub.urls.customer_portal.as_deref(),
        Some("https://x/portal")
    );
    assert!(crate::entitles_to_plan(&sub, 0));
}

#[test]
fn payment_events_carry_invoices_mapped_by_subscription_id() {
    let body = json_body(
        "subscription_payment_refunded",
        r#"{"type":"subscription-invoices","id":"77","attributes":{"subscription_id":1,
        "status":"refunded","billing_reason":"initial","refunded":true,"total":1900,
        "refunded_amount":1900,"currency":"USD","urls":{"invoice_url":"https://x/inv"},
        "created_at":"2025-12-01T00:00:00.000000Z","updated_at":"2025-12-02T00:00:00.000000Z"}}"#,
    );
    let event = parse_event(body.as_bytes()).unwrap();
    let WebhookObject::Invoice(invoice) = event.object else {
        panic!("not an invoice");
    };
    assert_eq!(invoice.subscription_id, "1");
    assert!(invoice.refunded);
    assert_eq!(invoice.refunded_amount, 1900);
}

#[test]
fn nasty_bodies_are_clear_errors() {
    let huge = vec![b' '; MAX_WEBHOOK_BODY_BYTES + 1];
    assert_eq!(
        parse_event(&huge),
        Err(PayloadError::TooLarge(MAX_WEBHOOK_BODY_BYTES))
    );
    assert!(matches!(
        parse_event(b"{not json"),
        Err(PayloadError::NotJson(_))
    ));
    assert!(matches!(parse_event(b""), Err(PayloadError::NotJson(_))));
    assert_eq!(
        parse_event(b"[]"),
        Err(PayloadError::Missing("meta".to_owned()))
    );
    assert_eq!(
        parse_event(br#"{"meta":{}}"#),
        Err(PayloadError::Missing("meta.event_name".to_owned()))
    );
    assert_eq!(
        parse_event(br#"{"meta":{"event_name":"subscription_created"}}"#),
        Err(PayloadError::Missing("data".to_owned()))
    );
    let no_status = subscription_body("subscription_updated").replace(r#""status":"active","#, "");
    assert_eq!(
        parse_event(no_status.as_bytes()),
        Err(PayloadError::Missing("data.attributes.status".to_owned()))
    );
    let wrong_type = subscription_body("subscription_payment_success");
    assert!(matches!(
        parse_event(wrong_type.as_bytes()),
        Err(PayloadError::Invalid { field, .. }) if field == "data.type"
    ));
    let bad_time =
        subscription_body("subscription_updated").replace("2025-12-01T00:00:01.000000Z", "soon");
    assert!(matches!(
        parse_event(bad_time.as_bytes()),
        Err(PayloadError::Invalid { field, .. }) if field == "data.attributes.updated_at"
    ));
    let object_user = subscription_body("subscription_created").replace(r#""u-1""#, r#"{"$ne":1}"#);
    assert!(matches!(
        parse_event(object_user.as_bytes()),
        Err(PayloadError::Invalid { field, .. }) if field == "meta.custom_data.user_id"
    ));
    let long_user = subscription_body("subscription_created").replace("u-1", &"u".repeat(65));
    assert!(parse_event(long_user.as_bytes()).is_err());
    // Unknown events are not errors: acknowledged and ignored.
    let other = parse_event(br#"{"meta":{"event_name":"license_key_created"},"data":{}}"#).unwrap();
    assert_eq!(other.object, WebhookObject::Ignored);
}

#[test]
fn event_keys_are_the_body_hash() {
    assert_eq!(event_key(b"a"), event_key(b"a"));
    assert_ne!(event_key(b"a"), event_key(b"a "));
    assert_eq!(event_key(b"").len(), 64);
}

#[test]
fn entitlement_follows_the_documented_statuses() {
    let event = parse_event(subscription_body("subscription_created").as_bytes()).unwrap();
    let WebhookObject::Subscription(mut sub) = event.object else {
        panic!()
    };
    for (status, entitled) in [
        ("on_trial", true),
        ("active", true),
        ("past_due", true),
        ("unpaid", false),
        ("expired", false),
        ("paused", false),
        ("weird", false),
    ] {
        sub.status = status.to_owned();
        assert_eq!(crate::entitles_to_plan(&sub, 0), entitled, "{status}");
    }
    sub.status = "paused".to_owned();
    sub.pause_mode = Some("free".to_owned());
    assert!(crate::entitles_to_plan(&sub, 0));
    sub.status = "cancelled".to_owned();
    sub.ends_at_ms = Some(1_000);
    assert!(crate::entitles_to_plan(&sub, 999));
    assert!(!crate::entitles_to_plan(&sub, 1_000));
}

//! A deleted account's audit entries are anonymised in the deleting transaction, like its
//! ledger entries: its id becomes the `deleted:<uuid>` value, addresses and e-mails go.

use selextract_store::{AuditEntry, AuditFilter, AuditRecord, Store};
use serde_json::json;

use crate::support::{Backend, both_backends, test_store, user};

async fn all_audit(store: &Store) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

both_backends!(a_deleted_accounts_audit_entries_are_anonymised_like_its_ledger);
async fn a_deleted_accounts_audit_entries_are_anonymised_like_its_ledger(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await.id;
    let bob = user(&store, "bob@example.com", 1).await.id;
    let alice_ip = "203.0.113.7";
    let bob_ip = "198.51.100.9";
    let entries = [
        (
            Some(alice.as_str()),
            Some(alice.as_str()),
            "login",
            alice_ip,
            json!({"email": "alice@example.com", "method": "password"}),
        ),
        (
            Some(alice.as_str()),
            None,
            "login_failed",
            alice_ip,
            json!({"email": "alice@example.com", "nested": {"email": "kept-nested"}}),
        ),
        // An entry about Bob made by Alice (say, as an administrator): Bob's id stays.
        (
            Some(bob.as_str()),
            Some(alice.as_str()),
            "admin_user_changed",
            alice_ip,
            json!({"fields": ["plan"]}),
        ),
        (
            Some(bob.as_str()),
            Some(bob.as_str()),
            "login",
            bob_ip,
            json!({"email": "bob@example.com"}),
        ),
        (
            None,
            Some("cli"),
            "signup",
            "",
            json!({"email": "'; DROP TABLE audit_log; --"}),
        ),
    ];
    for (user_id, actor, event, ip, details) in &entries {
        store
            .record_audit(&AuditEntry {
                user_id: *user_id,
                actor: *actor,
                event,
                ip: (!ip.is_empty()).then_some(*ip),
                details: details.clone(),
            })
            .await
            .unwrap();
    }
    let before = all_audit(&store).await;
    let untouched = |records: &[AuditRecord]| -> Vec<AuditRecord> {
        records
            .iter()
            .filter(|r| {
                r.actor.as_deref() == Some(bob.as_str()) || r.actor.as_deref() == Some("cli")
            })
            .cloned()
            .collect()
    };

    let report = store.delete_user_and_data(&alice).await.unwrap().unwrap();
    let anonymous = report.anonymised_as.unwrap();
    let after = all_audit(&store).await;
    assert_eq!(after.len(), before.len(), "no entry is added or removed");
    for record in &after {
        let text = format!("{record:?}");
        assert!(!text.contains(&alice), "{text}");
        assert!(!text.contains("alice@example.com"), "{text}");
        assert!(!text.contains(alice_ip), "{text}");
    }
    let alices: Vec<_> = after
        .iter()
        .filter(|r| r.user_id.as_deref() == Some(anonymous.as_str()))
        .collect();
    assert_eq!(alices.len(), 2);
    assert_eq!(alices[0].ip, None);
    // Only the top-level "email" goes; other details stay.
    let failed = alices.iter().find(|r| r.event == "login_failed").unwrap();
    assert_eq!(failed.details, json!({"nested": {"email": "kept-nested"}}));
    assert_eq!(failed.actor, None);
    let login = alices.iter().find(|r| r.event == "login").unwrap();
    assert_eq!(login.actor.as_deref(), Some(anonymous.as_str()));
    assert_eq!(login.details, json!({"method": "password"}));
    let about_bob = after
        .iter()
        .find(|r| r.event == "admin_user_changed")
        .unwrap();
    assert_eq!(about_bob.user_id.as_deref(), Some(bob.as_str()));
    assert_eq!(about_bob.actor.as_deref(), Some(anonymous.as_str()));
    assert_eq!(about_bob.ip, None);
    // Bob's own entries and the installation's are exactly as they were.
    assert_eq!(untouched(&before).len(), 2);
    assert_eq!(untouched(&after), untouched(&before));
}

//! The delivery loop: claims due deliveries under a lease, attempts each with bounded
//! concurrency and a per-attempt timeout, records every attempt, and settles the delivery
//! (delivered; retried with backoff; failed; or cancelled because its target is disabled).
//! It also runs the outcome sweep (`sweep.rs`). Every process that runs workers runs it.

use std::sync::Arc;
use std::time::Instant;

use selextract_fetch::guard::NameResolver;
use selextract_mail::{MailError, Mailer};
use selextract_store::{AttemptVerdict, AuditEntry, Delivery, DeliveryAttempt, Store, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::NotifyConfig;
use crate::document::{EventDocument, duration_ms};
use crate::email::{event_email, target_disabled_email};
use crate::metrics;
use crate::secret::WebhookSecrets;
use crate::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use crate::slack::slack_body;
use crate::transport::{Sent, Transport, TransportBuildError};

/// What the loop sends with, besides the store and its settings.
#[derive(Clone)]
pub struct NotifyDeps {
    /// Sends e-mail deliveries and disabled-target notices (refuses without `[smtp]`).
    pub mailer: Arc<Mailer>,
    /// Resolves webhook hosts (the system resolver when `None`; tests script it).
    pub resolver: Option<Arc<dyn NameResolver>>,
    /// Names this process's claims (`lease_owner`); unique per process.
    pub owner: String,
}

impl std::fmt::Debug for NotifyDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyDeps")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Everything one attempt needs, shared by the attempts in flight.
struct Deliverer {
    store: Store,
    config: NotifyConfig,
    deps: NotifyDeps,
    transport: Transport,
    secrets: tokio::sync::OnceCell<WebhookSecrets>,
}

/// Runs the delivery loop until `shutdown`; attempts in flight are finished (each within
/// `attempt_timeout`). Store outages are logged and retried at the poll interval.
pub async fn run_deliveries(
    store: Store,
    config: NotifyConfig,
    deps: NotifyDeps,
    shutdown: CancellationToken,
) -> Result<(), TransportBuildError> {
    let deliverer = Arc::new(Deliverer::new(store, config, deps)?);
    let slots = Arc::new(Semaphore::new(deliverer.config.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut next_sweep = Instant::now();
    while !shutdown.is_cancelled() {
        while in_flight.try_join_next().is_some() {}
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + deliverer.config.sweep_interval;
            let now = now_ms();
            if let Err(error) =
                crate::sweep::sweep_outcomes(&deliverer.store, &deliverer.config, now).await
            {
                tracing::warn!(%error, "recording the outcomes of runs settled elsewhere");
            }
        }
        let claimed = match claim(&deliverer, &slots, &shutdown).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming due deliveries");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(deliverer.config.poll_interval) => {}
            }
            continue;
        }
        for delivery in claimed {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let deliverer = deliverer.clone();
            in_flight.spawn(async move {
                deliverer.attempt(delivery).await;
                drop(slot);
            });
        }
    }
    while in_flight.join_next().await.is_some() {}
    Ok(())
}

/// Waits for a free slot, then claims as many due deliveries as there are free slots.
async fn claim(
    deliverer: &Deliverer,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Result<Vec<Delivery>, StoreError> {
    if slots.available_permits() == 0 {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Vec::new()),
            permit = slots.acquire() => drop(permit),
        }
    }
    let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
    deliverer
        .store
        .claim_due_deliveries(
            &deliverer.deps.owner,
            now_ms(),
            duration_ms(deliverer.config.lease()),
            free.max(1),
        )
        .await
}

/// Claims and attempts the deliveries due now, once, waiting for each attempt (for tests
/// and the benchmark's single pass): how many were attempted.
pub async fn deliver_due_once(
    store: &Store,
    config: &NotifyConfig,
    deps: &NotifyDeps,
) -> Result<usize, StoreError> {
    let deliverer = Arc::new(
        Deliverer::new(store.clone(), config.clone(), deps.clone())
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?,
    );
    let claimed = store
        .claim_due_deliveries(
            &deps.owner,
            now_ms(),
            duration_ms(config.lease()),
            u32::try_from(config.concurrency.max(1)).unwrap_or(u32::MAX),
        )
        .await?;
    let count = claimed.len();
    let mut set = JoinSet::new();
    for delivery in claimed {
        let deliverer = deliverer.clone();
        set.spawn(async move { deliverer.attempt(delivery).await });
    }
    while set.join_next().await.is_some() {}
    Ok(count)
}

/// What one attempt came to, before the retry window is considered.
enum Class {
    Delivered,
    Transient,
    Permanent,
}

impl Deliverer {
    fn new(
        store: Store,
        config: NotifyConfig,
        deps: NotifyDeps,
    ) -> Result<Deliverer, TransportBuildError> {
        let transport = Transport::new(&config, deps.resolver.clone())?;
        Ok(Deliverer {
            store,
            config,
            deps,
            transport,
            secrets: tokio::sync::OnceCell::new(),
        })
    }

    /// One attempt of a claimed delivery, recorded; failures of the store are logged (the
    /// lease then expires and the delivery is attempted again).
    async fn attempt(&self, delivery: Delivery) {
        if let Err(error) = self.try_attempt(&delivery).await {
            tracing::warn!(%error, delivery = %delivery.id, "recording a delivery attempt");
        }
    }

    async fn try_attempt(&self, delivery: &Delivery) -> Result<(), StoreError> {
        if let Some(task_id) = &delivery.task_id
            && self
                .store
                .is_notify_target_disabled(task_id, &delivery.channel, &delivery.target)
                .await?
        {
            if self
                .store
                .cancel_claimed_delivery(&delivery.id, &self.deps.owner, "target disabled")
                .await?
            {
                metrics::count("cancelled", 1);
            }
            return Ok(());
        }
        let started_at_ms = now_ms();
        let clock = Instant::now();
        let (class, status, error) = self.send(delivery).await?;
        let elapsed = clock.elapsed();
        metrics::attempt_took(&delivery.channel, elapsed);
        let now = now_ms();
        let (verdict, outcome, error) = match class {
            Class::Delivered => (AttemptVerdict::Delivered, "delivered", error),
            Class::Transient => {
                let next = now.saturating_add(duration_ms(self.config.backoff(delivery.attempts)));
                if next <= delivery.give_up_at_ms {
                    (
                        AttemptVerdict::Retry {
                            next_attempt_at_ms: next,
                        },
                        "retry",
                        error,
                    )
                } else {
                    let error = format!(
                        "gave up after {} attempts: {}",
                        delivery.attempts,
                        error.as_deref().unwrap_or("no success")
                    );
                    (self.failed(), "failed", Some(error))
                }
            }
            Class::Permanent => (self.failed(), "failed", error),
        };
        let attempt = DeliveryAttempt {
            attempt: delivery.attempts,
            started_at_ms,
            outcome: outcome.to_owned(),
            status_code: status,
            latency_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            error,
        };
        let recorded = self
            .store
            .record_delivery_attempt(delivery, &self.deps.owner, &attempt, verdict, now)
            .await?;
        if !recorded.recorded {
            return Ok(());
        }
        metrics::count(
            match verdict {
                AttemptVerdict::Delivered => "delivered",
                AttemptVerdict::Retry { .. } => "retried",
                AttemptVerdict::Failed { .. } => "failed",
            },
            1,
        );
        metrics::count("cancelled", recorded.cancelled);
        if recorded.target_disabled {
            metrics::count("disabled", 1);
            self.notify_target_disabled(delivery, attempt.error.as_deref().unwrap_or("failed"))
                .await?;
        }
        Ok(())
    }

    fn failed(&self) -> AttemptVerdict {
        AttemptVerdict::Failed {
            disable_after: self.config.disable_after,
        }
    }

    /// Sends by channel: the class, the status code (HTTP), and the error text.
    async fn send(
        &self,
        delivery: &Delivery,
    ) -> Result<(Class, Option<u16>, Option<String>), StoreError> {
        let event: EventDocument = match serde_json::from_value(delivery.payload.clone()) {
            Ok(event) => event,
            Err(error) => {
                return Ok((
                    Class::Permanent,
                    None,
                    Some(format!("the stored event document is unreadable: {error}")),
                ));
            }
        };
        let timeout = self.config.attempt_timeout;
        let sent = match delivery.channel.as_str() {
            "webhook" => {
                let Some(secret) = self.secret_of(&delivery.user_id).await? else {
                    return Ok((Class::Permanent, None, Some("the user is gone".into())));
                };
                let body = delivery.payload.to_string().into_bytes();
                let headers = [
                    (SIGNATURE_HEADER, sign(&secret, now_ms() / 1000, &body)),
                    (EVENT_HEADER, delivery.event.clone()),
                    (DELIVERY_HEADER, delivery.id.clone()),
                ];
                self.transport
                    .post_json(&delivery.target, &headers, body, timeout)
                    .await
            }
            "slack" => {
                let body = slack_body(&event).to_string().into_bytes();
                self.transport
                    .post_json(&delivery.target, &[], body, timeout)
                    .await
            }
            "email" => return Ok(self.send_email(&delivery.target, &event).await),
            other => {
                return Ok((
                    Class::Permanent,
                    None,
                    Some(format!("unknown channel {other}")),
                ));
            }
        };
        Ok(match sent {
            Sent::Status(status @ 200..=299) => (Class::Delivered, Some(status), None),
            Sent::Status(status @ (408 | 429 | 500..=599)) => (
                Class::Transient,
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Sent::Status(status @ 300..=399) => (
                Class::Permanent,
                Some(status),
                Some(format!(
                    "the receiver answered {status}: redirects are not followed"
                )),
            ),
            Sent::Status(status) => (
                Class::Permanent,
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Sent::Timeout => (
                Class::Transient,
                None,
                Some(format!("no answer within {} ms", timeout.as_millis())),
            ),
            Sent::Unreachable(error) => (Class::Transient, None, Some(error)),
            Sent::Refused(error) => (Class::Permanent, None, Some(format!("refused: {error}"))),
        })
    }

    async fn send_email(
        &self,
        target: &str,
        event: &EventDocument,
    ) -> (Class, Option<u16>, Option<String>) {
        let Ok(to) = selextract_accounts::Email::parse(target) else {
            return (
                Class::Permanent,
                None,
                Some("not an e-mail address".to_owned()),
            );
        };
        let bodies = event_email(event);
        let sending =
            self.deps
                .mailer
                .send_alternative(&to, &bodies.subject, &bodies.text, &bodies.html);
        match tokio::time::timeout(self.config.attempt_timeout, sending).await {
            Ok(Ok(())) => (Class::Delivered, None, None),
            Ok(Err(error @ MailError::Smtp(_))) => {
                (Class::Transient, None, Some(error.to_string()))
            }
            Ok(Err(error)) => (Class::Permanent, None, Some(error.to_string())),
            Err(_) => (
                Class::Transient,
                None,
                Some("the SMTP server did not finish in time".to_owned()),
            ),
        }
    }

    async fn secret_of(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let secrets = self
            .secrets
            .get_or_try_init(|| WebhookSecrets::load(&self.store))
            .await?;
        secrets.current_secret(&self.store, user_id).await
    }

    /// Tells the user a target was disabled: an audit entry (`notify_target_disabled`,
    /// in their own audit log) and, when SMTP is configured, an e-mail to the account's
    /// address. The target shows as disabled in `GET /tasks/{id}/notify/targets`.
    async fn notify_target_disabled(
        &self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), StoreError> {
        let task_id = delivery.task_id.as_deref().unwrap_or_default();
        let shown = shown_target(&delivery.channel, &delivery.target);
        tracing::warn!(task = task_id, channel = %delivery.channel, target = %shown, "notification target disabled");
        self.store
            .record_audit(&AuditEntry {
                user_id: Some(&delivery.user_id),
                actor: Some("notify"),
                event: "notify_target_disabled",
                ip: None,
                details: serde_json::json!({
                    "task_id": task_id,
                    "channel": delivery.channel,
                    "target": shown,
                    "reason": reason,
                }),
            })
            .await?;
        if !self.deps.mailer.is_configured() {
            return Ok(());
        }
        let Some(user) = self.store.find_user_by_id(&delivery.user_id).await? else {
            return Ok(());
        };
        let task_name = match self.store.find_task(&delivery.user_id, task_id).await? {
            Some(task) => task.name,
            None => task_id.to_owned(),
        };
        let bodies = target_disabled_email(&task_name, &delivery.channel, &shown, reason);
        if let Ok(to) = selextract_accounts::Email::parse(&user.email) {
            let sending =
                self.deps
                    .mailer
                    .send_alternative(&to, &bodies.subject, &bodies.text, &bodies.html);
            match tokio::time::timeout(self.config.attempt_timeout, sending).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "sending the disabled-target notice"),
                Err(_) => tracing::warn!("sending the disabled-target notice timed out"),
            }
        }
        Ok(())
    }
}

/// A target as notices show it: an e-mail address as is; a URL only as its origin (Slack
/// webhook URLs carry their credential in the path).
pub(crate) fn shown_target(channel: &str, target: &str) -> String {
    if channel == "email" {
        return target.to_owned();
    }
    match url::Url::parse(target) {
        Ok(url) => format!("{}/…", url.origin().ascii_serialization()),
        Err(_) => "(not a URL)".to_owned(),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

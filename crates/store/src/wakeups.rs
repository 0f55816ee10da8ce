//! Cross-process queue wake-ups: on PostgreSQL every process LISTENs on one channel that a
//! trigger on `runs` NOTIFYs whenever a run becomes claimable, so an idle worker in any
//! process starts a new run at once instead of at its next poll. SQLite has no such
//! channel; there the in-process waker and polling do the job.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Store;
use crate::db::Db;

/// The channel the migration's `selextract_notify_queue()` trigger notifies.
pub const QUEUE_CHANNEL: &str = "selextract_queue";

/// First and largest pause before listening again after the connection failed.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(250);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The listening task; dropping this stops it.
#[derive(Debug)]
pub struct QueueWakeups {
    task: JoinHandle<()>,
}

impl Drop for QueueWakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// Calls `waker.notify_one()` whenever any process makes a run claimable (PostgreSQL
    /// LISTEN/NOTIFY), and also after (re)connecting, since notifications sent while
    /// disconnected are lost. The listener reconnects with backoff on its own; polling stays
    /// the fallback. `None` on SQLite, which has no cross-process channel. Must be called
    /// inside a tokio runtime; keep the returned value alive for as long as wake-ups are
    /// wanted.
    pub fn subscribe_queue_wakeups(&self, waker: Arc<Notify>) -> Option<QueueWakeups> {
        match &self.db {
            Db::Sqlite(_) => None,
            Db::Postgres(pool) => {
                // A pool of its own: the listener holds its connection for good, which must
                // not take a slot from the statements' pool.
                let listener_pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_lazy_with((*pool.connect_options()).clone());
                let task = tokio::spawn(listen_for_wakeups(listener_pool, waker));
                Some(QueueWakeups { task })
            }
        }
    }
}

async fn listen_for_wakeups(pool: PgPool, waker: Arc<Notify>) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        let error = listen_until_error(&pool, &waker, &mut backoff).await;
        tracing::warn!(%error, retry_in = ?backoff, "queue wake-up listener lost its connection");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// Listens until the connection fails and cannot be re-established at once.
async fn listen_until_error(pool: &PgPool, waker: &Notify, backoff: &mut Duration) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => return error,
    };
    if let Err(error) = listener.listen(QUEUE_CHANNEL).await {
        return error;
    }
    *backoff = RECONNECT_BACKOFF_MIN;
    // Runs may have been enqueued while nobody listened.
    waker.notify_one();
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => waker.notify_one(),
            // The connection dropped and was re-established (the listener reconnects and
            // listens again by itself); anything sent in between was lost.
            Ok(None) => waker.notify_one(),
            Err(error) => return error,
        }
    }
}

//! OpenID Connect identities: which local account a provider's account (`provider`,
//! `subject`) logs into. A subject is linked once; a user may hold one link per provider
//! and keep a password besides.

use serde::Serialize;

use crate::db::{RowExt, WritePool, new_id, now_ms, with_pool};
use crate::error::conflict_on_unique;
use crate::users::{normalize_email, user_columns, user_from_row};
use crate::{NewUser, Store, StoreError, User};

/// The columns of `oidc_identities` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! oidc_identities_columns {
    () => {
        "provider, subject, user_id, email, created_at"
    };
}

/// A provider account linked to a local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OidcIdentity {
    /// The `[auth.oidc.<name>]` table it came through.
    pub provider: String,
    /// The provider's stable account id (`sub`).
    pub subject: String,
    pub user_id: String,
    /// The e-mail address the provider gave when the link was made.
    pub email: String,
    pub created_at_ms: i64,
}

/// What [`Store::link_oidc_identity`] and [`Store::create_user_with_oidc_identity`] need.
#[derive(Debug, Clone)]
pub struct NewOidcIdentity {
    pub provider: String,
    pub subject: String,
    pub email: String,
    /// The provider said `email_verified: true` for `email`: the user's address counts as
    /// verified from now on.
    pub email_verified: bool,
}

const IDENTITY_TAKEN: &str = "this identity is already linked to an account";

const INSERT_IDENTITY: &str = "INSERT INTO oidc_identities (provider, subject, user_id, email, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

/// The first verification counts: a set `email_verified_at` stays.
const MARK_EMAIL_VERIFIED: &str =
    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2";

/// Links `identity` to `user_id` inside the caller's transaction, marking the user's e-mail
/// verified when the provider vouched for it: the one way an identity is written, whether
/// for an existing account or a new one. A macro because its body is compiled once per
/// backend.
macro_rules! insert_identity {
    ($tx:expr, $identity:expr, $user_id:expr, $now:expr) => {{
        let identity: &NewOidcIdentity = $identity;
        sqlx::query(INSERT_IDENTITY)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .bind($user_id)
            .bind(normalize_email(&identity.email))
            .bind($now)
            .execute(&mut *$tx)
            .await
            .map_err(|error| conflict_on_unique(error, IDENTITY_TAKEN))?;
        if identity.email_verified {
            sqlx::query(MARK_EMAIL_VERIFIED)
                .bind($now)
                .bind($user_id)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl Store {
    /// The user that (`provider`, `subject`) logs into, if it was linked.
    pub async fn find_user_by_oidc_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users JOIN oidc_identities i ON i.user_id = users.id \
                 WHERE i.provider = $1 AND i.subject = $2",
            ))
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
        })
    }

    /// Links a provider account to an existing user (found by a verified e-mail address).
    /// [`StoreError::Conflict`] when that provider account is linked already;
    /// [`StoreError::NotFound`] when the user is gone.
    pub async fn link_oidc_identity(
        &self,
        user_id: &str,
        identity: &NewOidcIdentity,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let user = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if user.is_none() {
                return Err(StoreError::NotFound("user".to_owned()));
            }
            insert_identity!(tx, identity, user_id, now);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Creates a user and its link to a provider account in one transaction, so a login
    /// never leaves an account without the identity that made it. The e-mail address is
    /// stored lower-cased and counts as verified when the provider said so.
    /// [`StoreError::Conflict`] when the e-mail is registered or the identity linked.
    pub async fn create_user_with_oidc_identity(
        &self,
        new: NewUser,
        display_name: Option<&str>,
        identity: &NewOidcIdentity,
    ) -> Result<User, StoreError> {
        let id = new_id();
        let now = now_ms();
        let created = with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, is_admin, plan, max_concurrent_runs, \
                 created_at, disabled, display_name) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
            )
            .bind(&id)
            .bind(normalize_email(&new.email))
            .bind(&new.password_hash)
            .bind(i64::from(new.is_admin))
            .bind(&new.plan)
            .bind(i64::from(new.max_concurrent_runs))
            .bind(now)
            .bind(display_name)
            .execute(&mut *tx)
            .await
            .map_err(|error| conflict_on_unique(error, "e-mail already registered"))?;
            insert_identity!(tx, identity, &id, now);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        });
        created?;
        self.find_user_by_id(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound("user".to_owned()))
    }

    /// The provider accounts linked to a user, oldest first.
    pub async fn list_oidc_identities(
        &self,
        user_id: &str,
    ) -> Result<Vec<OidcIdentity>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                oidc_identities_columns!(),
                " FROM oidc_identities WHERE user_id = $1 \
                 ORDER BY created_at, provider, subject"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(identity_from_row)
            .collect()
        })
    }
}

fn identity_from_row(row: &impl RowExt) -> Result<OidcIdentity, StoreError> {
    Ok(OidcIdentity {
        provider: row.text("provider")?,
        subject: row.text("subject")?,
        user_id: row.text("user_id")?,
        email: row.text("email")?,
        created_at_ms: row.int("created_at")?,
    })
}

//! Accounts: creation, lookup by id or e-mail, listing, plan, password, admin and disabled
//! changes. The changes that could leave an installation without an enabled administrator
//! (demoting or disabling one) refuse to remove the last one, checked in the same statement.

use crate::db::{RowExt, new_id, now_ms, with_pool};
use crate::error::conflict_on_unique;
use crate::{NewUser, Store, StoreError, User};

/// The columns `user_from_row` reads, table-qualified: named instead of `*` for the reason
/// given at `runs::run_columns`.
macro_rules! user_columns {
    () => {
        "users.id, users.email, users.password_hash, users.is_admin, users.plan, users.max_concurrent_runs, users.created_at, users.disabled"
    };
}
pub(crate) use user_columns;

impl Store {
    /// Creates a user; the e-mail is stored trimmed and lower-cased. An e-mail that is
    /// already registered is [`StoreError::Conflict`].
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let id = new_id();
        let email = normalize_email(&new.email);
        let created_at = now_ms();
        // Not the OpenID creation's statement with a NULL display name: this one must work
        // on a schema before migration 4 too (upgrades and migration tests create users
        // there), which has no `display_name` column.
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(concat!(
                "INSERT INTO users (id, email, password_hash, is_admin, plan, max_concurrent_runs, created_at, disabled) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0) RETURNING ",
 user_columns!(),
            ))
            .bind(&id)
            .bind(&email)
            .bind(&new.password_hash)
            .bind(i64::from(new.is_admin))
            .bind(&new.plan)
            .bind(i64::from(new.max_concurrent_runs))
            .bind(created_at)
            .fetch_one(pool)
            .await
            .map_err(|error| conflict_on_unique(error, "e-mail already registered"))?;
            user_from_row(&row)
        })
    }

    pub async fn find_user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $1"
            ))
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
        })
    }

    /// Finds a user by e-mail, ignoring case and surrounding spaces.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = normalize_email(email);
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = $1"
            ))
            .bind(&email)
            .fetch_optional(pool)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
        })
    }

    pub async fn count_users(&self) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
                .fetch_one(pool)
                .await?;
            row.uint("n")
        })
    }

    /// Sets a user's plan and concurrency cap; false when the user does not exist.
    pub async fn set_user_plan(
        &self,
        user_id: &str,
        plan: &str,
        max_concurrent_runs: u32,
    ) -> Result<bool, StoreError> {
        let changed = with_pool!(&self.db, |pool| {
            let done =
                sqlx::query("UPDATE users SET plan = $1, max_concurrent_runs = $2 WHERE id = $3")
                    .bind(plan)
                    .bind(i64::from(max_concurrent_runs))
                    .bind(user_id)
                    .execute(pool)
                    .await?;
            Ok::<_, StoreError>(done.rows_affected() == 1)
        })?;
        self.credential_change(changed).await
    }

    /// Disables or re-enables a user; a disabled user's queued runs are not claimed.
    /// False when the user does not exist.
    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let changed = with_pool!(&self.db, |pool| {
            let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(i64::from(disabled))
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok::<_, StoreError>(done.rows_affected() == 1)
        })?;
        self.credential_change(changed).await
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users ORDER BY created_at, id"
            ))
            .fetch_all(pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
        })
    }

    /// Stores a user's password hash (a PHC string; `None` removes the password); false when
    /// the user does not exist.
    pub async fn set_user_password_hash(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Makes a user an administrator or takes the flag away. Taking it from the last
    /// enabled administrator is refused ([`GuardedChange::LastEnabledAdmin`]).
    pub async fn set_user_admin(
        &self,
        user_id: &str,
        is_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let statement = if is_admin {
            "UPDATE users SET is_admin = 1 WHERE id = $1"
        } else {
            // The subquery counts before the update, in the same statement.
            "UPDATE users SET is_admin = 0 WHERE id = $1 AND NOT (is_admin = 1 AND disabled = 0 \
             AND (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0) <= 1)"
        };
        let changed = with_pool!(&self.db, |pool| {
            sqlx::query(statement)
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        });
        self.guarded_outcome(user_id, changed).await
    }

    /// Disables a user unless it is the last enabled administrator
    /// ([`GuardedChange::LastEnabledAdmin`]); a disabled user's queued runs are not claimed
    /// and its API keys are refused.
    pub async fn disable_user_unless_last_admin(
        &self,
        user_id: &str,
    ) -> Result<GuardedChange, StoreError> {
        let changed = with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET disabled = 1 WHERE id = $1 AND NOT (is_admin = 1 AND disabled = 0 \
                 AND (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0) <= 1)",
            )
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        });
        self.guarded_outcome(user_id, changed).await
    }

    /// After a change to what a user's credentials allow: bumps the credential revision when
    /// a row changed, so every API process drops its cached keys.
    async fn credential_change(&self, changed: bool) -> Result<bool, StoreError> {
        if changed {
            self.bump_credential_revision().await?;
        }
        Ok(changed)
    }

    /// An update that changed no row either found no user or was refused by its guard.
    async fn guarded_outcome(
        &self,
        user_id: &str,
        changed: bool,
    ) -> Result<GuardedChange, StoreError> {
        if changed {
            self.bump_credential_revision().await?;
            return Ok(GuardedChange::Changed);
        }
        Ok(match self.find_user_by_id(user_id).await? {
            None => GuardedChange::NoSuchUser,
            Some(_) => GuardedChange::LastEnabledAdmin,
        })
    }
}

/// The outcome of a change that must not leave the installation without an enabled
/// administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardedChange {
    Changed,
    NoSuchUser,
    /// Refused: the user is the last enabled administrator.
    LastEnabledAdmin,
}

/// How every e-mail address is stored and looked up (users, OpenID links, account tokens):
/// trimmed and lower-cased, so `Ada@Example.org ` and `ada@example.org` are one address.
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn user_from_row(row: &impl RowExt) -> Result<User, StoreError> {
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        password_hash: row.opt_text("password_hash")?,
        is_admin: row.flag("is_admin")?,
        plan: row.text("plan")?,
        max_concurrent_runs: row.uint("max_concurrent_runs")?,
        created_at_ms: row.int("created_at")?,
        disabled: row.flag("disabled")?,
    })
}

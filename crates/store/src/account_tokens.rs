//! Tokens sent by e-mail (or printed, for the first administrator): password reset,
//! e-mail verification, invitations and the admin's setup link. Each is single-use and
//! expires; the table holds only the token's hash (hashing is the caller's job, like API
//! keys), so a copy of the database cannot reset anybody's password.
//!
//! Consuming is one `UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING`, so of
//! two requests racing with one token (on any number of processes) exactly one gets it.
//! Issuing a token withdraws the unused ones of the same purpose for the same user (or, for
//! an invitation, the same address): only the newest e-mail works.

use std::str::FromStr;

use crate::db::{RowExt, WritePool, now_ms, with_pool};
use crate::users::normalize_email;
use crate::{Store, StoreError};

/// The columns of `account_tokens` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! account_tokens_columns {
    () => {
        "token_hash, purpose, user_id, email, created_by, created_at, expires_at, used_at"
    };
}

/// Spent and expired tokens are deleted this long after they expire (a day), when a new
/// token is issued: kept a little so a late click can be told "expired", not "unknown".
const PRUNE_AFTER_MS: i64 = 24 * 3600 * 1000;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountTokenPurpose {
    PasswordReset,
    VerifyEmail,
    Invitation,
    /// The first administrator's "set your password" link, printed at first start.
    AdminSetup,
}

impl AccountTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountTokenPurpose::PasswordReset => "password_reset",
            AccountTokenPurpose::VerifyEmail => "verify_email",
            AccountTokenPurpose::Invitation => "invitation",
            AccountTokenPurpose::AdminSetup => "admin_setup",
        }
    }
}

impl FromStr for AccountTokenPurpose {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Ok(match text {
            "password_reset" => AccountTokenPurpose::PasswordReset,
            "verify_email" => AccountTokenPurpose::VerifyEmail,
            "invitation" => AccountTokenPurpose::Invitation,
            "admin_setup" => AccountTokenPurpose::AdminSetup,
            _ => return Err(()),
        })
    }
}

/// What [`Store::create_account_token`] needs.
#[derive(Debug, Clone)]
pub struct NewAccountToken<'a> {
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: &'a str,
    pub purpose: AccountTokenPurpose,
    /// The account it acts on; `None` for an invitation (no account yet).
    pub user_id: Option<&'a str>,
    /// The address it was sent to (normalised).
    pub email: &'a str,
    /// Who issued it (the inviting administrator), when not the user.
    pub created_by: Option<&'a str>,
    pub expires_at_ms: i64,
}

/// A stored token (its hash, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    pub token_hash: String,
    pub purpose: AccountTokenPurpose,
    pub user_id: Option<String>,
    pub email: String,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

impl Store {
    /// Stores a new token and withdraws the unused tokens of the same purpose for the same
    /// user (or address, when there is no user); also deletes tokens that expired more than
    /// a day ago. A hash that exists already is [`StoreError::Conflict`].
    pub async fn create_account_token(
        &self,
        new: &NewAccountToken<'_>,
    ) -> Result<AccountToken, StoreError> {
        let now = now_ms();
        let email = normalize_email(new.email);
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM account_tokens WHERE expires_at < $1")
                .bind(now.saturating_sub(PRUNE_AFTER_MS))
                .execute(&mut *tx)
                .await?;
            match new.user_id {
                Some(user_id) => {
                    sqlx::query(
                        "DELETE FROM account_tokens WHERE purpose = $1 AND user_id = $2 \
                         AND used_at IS NULL",
                    )
                    .bind(new.purpose.as_str())
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query(
                        "DELETE FROM account_tokens WHERE purpose = $1 AND user_id IS NULL \
                         AND email = $2 AND used_at IS NULL",
                    )
                    .bind(new.purpose.as_str())
                    .bind(&email)
                    .execute(&mut *tx)
                    .await?
                }
            };
            let row = sqlx::query(concat!(
                "INSERT INTO account_tokens \
                 (token_hash, purpose, user_id, email, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                account_tokens_columns!(),
                ""
            ))
            .bind(new.token_hash)
            .bind(new.purpose.as_str())
            .bind(new.user_id)
            .bind(&email)
            .bind(new.created_by)
            .bind(now)
            .bind(new.expires_at_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| crate::error::conflict_on_unique(error, "token exists"))?;
            let token = account_token_from_row(&row)?;
            tx.commit().await?;
            Ok(token)
        })
    }

    /// Spends a token: the one live (unused, unexpired at `now_ms`) token of `purpose` with
    /// this hash, now marked used, or `None`. Atomic: a token is spent at most once.
    pub async fn consume_account_token(
        &self,
        purpose: AccountTokenPurpose,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<AccountToken>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
                 AND used_at IS NULL AND expires_at > $1 RETURNING ",
                account_tokens_columns!(),
                ""
            ))
            .bind(now_ms)
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| account_token_from_row(&row))
            .transpose()
        })
    }

    /// Spends an invitation, but only for the address it was sent to (normalised), so an
    /// invitation cannot be used to sign up someone else — and a wrong address leaves it
    /// unspent.
    pub async fn consume_invitation(
        &self,
        token_hash: &str,
        email: &str,
        now_ms: i64,
    ) -> Result<Option<AccountToken>, StoreError> {
        let email = normalize_email(email);
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
                 AND email = $4 AND used_at IS NULL AND expires_at > $1 RETURNING ",
                account_tokens_columns!(),
                ""
            ))
            .bind(now_ms)
            .bind(token_hash)
            .bind(AccountTokenPurpose::Invitation.as_str())
            .bind(&email)
            .fetch_optional(pool)
            .await?
            .map(|row| account_token_from_row(&row))
            .transpose()
        })
    }

    /// The live token with this hash, of any purpose, without spending it (to show the right
    /// page for a link before its form is sent).
    pub async fn find_live_account_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<AccountToken>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                account_tokens_columns!(),
                " FROM account_tokens WHERE token_hash = $1 AND used_at IS NULL \
                 AND expires_at > $2"
            ))
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?
            .map(|row| account_token_from_row(&row))
            .transpose()
        })
    }

    /// When the newest token of `purpose` for this user was issued (used or not), for a
    /// cooldown between e-mails.
    pub async fn latest_account_token_at(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
    ) -> Result<Option<i64>, StoreError> {
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(
                "SELECT MAX(created_at) AS latest FROM account_tokens \
                 WHERE user_id = $1 AND purpose = $2",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .fetch_one(pool)
            .await?;
            row.opt_int("latest")
        })
    }

    /// Withdraws every unused token of `purpose` for a user (after a password reset, the
    /// other reset links die with the old password). Returns how many.
    pub async fn withdraw_account_tokens(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
    ) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Marks a user's address verified at `now_ms` — only while the account still has the
    /// address the verification was sent to (a link for an old address verifies nothing).
    /// False when no user has that id and address.
    pub async fn set_email_verified(
        &self,
        user_id: &str,
        email: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let email = normalize_email(email);
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) \
                 WHERE id = $2 AND email = $3",
            )
            .bind(now_ms)
            .bind(user_id)
            .bind(&email)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

fn account_token_from_row(row: &impl RowExt) -> Result<AccountToken, StoreError> {
    Ok(AccountToken {
        token_hash: row.text("token_hash")?,
        purpose: row.parsed("purpose")?,
        user_id: row.opt_text("user_id")?,
        email: row.text("email")?,
        created_by: row.opt_text("created_by")?,
        created_at_ms: row.int("created_at")?,
        expires_at_ms: row.int("expires_at")?,
        used_at_ms: row.opt_int("used_at")?,
    })
}

//! Logins: dashboard sessions, rotating refresh-token families, and the failed-login
//! counters and profile columns on `users` that the login routes read and write.
//!
//! Session ids and refresh tokens are stored as hashes only (hashing is the caller's job,
//! like API keys). Everything that takes access away from a token the API processes cache
//! (a refresh family revoked, "log out everywhere") bumps the credential revision, so every
//! process forgets its cached standing within `server.credential_check_interval`. Sessions
//! are not cached: each request reads its row, so ending one is final at once.

use crate::db::{RowExt, WritePool, new_id, now_ms, with_pool};
use crate::error::conflict_on_unique;
use crate::users::normalize_email;
use crate::{Store, StoreError};

/// The columns of `sessions` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! sessions_columns {
    () => {
        "id, user_id, created_at, last_seen_at, expires_at, revoked_at"
    };
}

/// A dashboard session (the cookie holds a secret whose hash is the row's `token_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    /// The absolute end, fixed at login.
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// What [`Store::create_session`] needs.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub expires_at_ms: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was live: it is now spent and the new one (same family) is stored.
    Rotated { user_id: String, family_id: String },
    /// The token had been spent already: someone replayed it, so the whole family was
    /// revoked now.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or of a revoked family.
    Invalid,
}

/// Whether a refresh family's access tokens may still be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyStanding {
    pub user_id: String,
    pub revoked: bool,
}

/// The login-related columns of a user: profile, verification and lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStanding {
    pub display_name: Option<String>,
    pub email_verified_at_ms: Option<i64>,
    pub failed_logins: u64,
    pub locked_until_ms: Option<i64>,
    pub last_login_at_ms: Option<i64>,
}

impl Store {
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<Session, StoreError> {
        let id = new_id();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(concat!("INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7) RETURNING ", sessions_columns!(), ""))
            .bind(&id)
            .bind(new.token_hash)
            .bind(new.user_id)
            .bind(now)
            .bind(new.expires_at_ms)
            .bind(new.ip)
            .bind(new.user_agent)
            .fetch_one(pool)
            .await
            .map_err(|error| conflict_on_unique(error, "session token already exists"))?;
            session_from_row(&row)
        })
    }

    /// The session whose secret hashes to `token_hash`, ended or not: the caller judges.
    pub async fn find_session_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<Session>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                sessions_columns!(),
                " FROM sessions WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
            .map(|row| session_from_row(&row))
            .transpose()
        })
    }

    pub async fn find_session(&self, session_id: &str) -> Result<Option<Session>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                sessions_columns!(),
                " FROM sessions WHERE id = $1"
            ))
            .bind(session_id)
            .fetch_optional(pool)
            .await?
            .map(|row| session_from_row(&row))
            .transpose()
        })
    }

    /// Records use of a session (the idle clock restarts).
    pub async fn touch_session(&self, session_id: &str, now_ms: i64) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(session_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Ends one session of a user (logout); false when there is no live such session.
    pub async fn end_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(session_id)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Ends every live session of a user but `except` (the one making a password change
    /// keeps working). Returns how many ended.
    pub async fn end_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                 AND id <> COALESCE($3, '')",
            )
            .bind(now)
            .bind(user_id)
            .bind(except)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Stores a refresh token of `family_id` (a new family for a fresh login).
    pub async fn insert_refresh_token(
        &self,
        user_id: &str,
        family_id: &str,
        token_hash: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let id = new_id();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(family_id)
            .bind(user_id)
            .bind(token_hash)
            .bind(now)
            .bind(expires_at_ms)
            .execute(pool)
            .await
            .map_err(|error| conflict_on_unique(error, "refresh token already exists"))?;
            Ok(())
        })
    }

    /// Spends the refresh token hashing to `presented_hash` and stores its successor
    /// (`new_hash`, same family) in one transaction, so of two concurrent presentations of
    /// one token exactly one rotates. A token presented again after it was spent revokes
    /// its whole family ([`RefreshRotation::Reused`]) and bumps the credential revision.
    pub async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        new_hash: &str,
        new_expires_at_ms: i64,
    ) -> Result<RefreshRotation, StoreError> {
        let now = now_ms();
        let new_id = new_id();
        // Early answers leave the labelled block (not the function), so a reuse still bumps
        // the revision below; an uncommitted transaction rolls back when dropped.
        let rotation: RefreshRotation = with_pool!(&self.db, |pool| 'rotate: {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query(
                "SELECT family_id, user_id, expires_at, spent_at, revoked_at FROM refresh_tokens \
                 WHERE token_hash = $1",
            )
            .bind(presented_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = found else {
                break 'rotate RefreshRotation::Invalid;
            };
            let family_id = row.text("family_id")?;
            let user_id = row.text("user_id")?;
            if row.opt_int("revoked_at")?.is_some() {
                break 'rotate RefreshRotation::Invalid;
            }
            if row.opt_int("spent_at")?.is_some() {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&family_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                break 'rotate RefreshRotation::Reused { user_id, family_id };
            }
            if row.int("expires_at")? <= now {
                break 'rotate RefreshRotation::Invalid;
            }
            // The guard repeats the checks: on PostgreSQL another transaction may have spent
            // the token since the read.
            let spent = sqlx::query(
                "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 \
                 AND spent_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(presented_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if spent != 1 {
                // Another transaction spent (or revoked) it since the read (PostgreSQL: the
                // row lock made this update wait for it): two holders presented one token
                // at once, which is a replay like any other.
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&family_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                break 'rotate RefreshRotation::Reused { user_id, family_id };
            }
            sqlx::query(
                "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&new_id)
            .bind(&family_id)
            .bind(&user_id)
            .bind(new_hash)
            .bind(now)
            .bind(new_expires_at_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            RefreshRotation::Rotated { user_id, family_id }
        });
        if matches!(rotation, RefreshRotation::Reused { .. }) {
            self.bump_credential_revision().await?;
        }
        Ok(rotation)
    }

    /// Whether `family_id` exists and is not revoked, with its user. Cheap: one indexed read.
    pub async fn refresh_family_standing(
        &self,
        family_id: &str,
    ) -> Result<Option<FamilyStanding>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT user_id, CAST(COUNT(revoked_at) AS BIGINT) AS revoked FROM refresh_tokens \
                 WHERE family_id = $1 GROUP BY user_id",
            )
            .bind(family_id)
            .fetch_optional(pool)
            .await?
            .map(|row| {
                Ok(FamilyStanding {
                    user_id: row.text("user_id")?,
                    revoked: row.int("revoked")? > 0,
                })
            })
            .transpose()
        })
    }

    /// Revokes every refresh family of a user but `except` (their access tokens stop
    /// working on every process); returns how many tokens were revoked.
    pub async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        except: Option<&str>,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let revoked = with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                 AND family_id <> COALESCE($3, '')",
            )
            .bind(now)
            .bind(user_id)
            .bind(except)
            .execute(pool)
            .await?;
            Ok::<_, StoreError>(done.rows_affected())
        })?;
        // Bumped even when nothing was live: an access token outlives its family's last
        // refresh token, and the cached standing must be read again.
        self.bump_credential_revision().await?;
        Ok(revoked)
    }

    /// Revokes one refresh family (logout with a JWT); returns whether it was live.
    pub async fn revoke_refresh_family(
        &self,
        user_id: &str,
        family_id: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let revoked = with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND family_id = $3 \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .bind(family_id)
            .execute(pool)
            .await?;
            Ok::<_, StoreError>(done.rows_affected() > 0)
        })?;
        self.bump_credential_revision().await?;
        Ok(revoked)
    }

    /// The login-related columns of a user; `None` when there is no such user.
    pub async fn account_standing(
        &self,
        user_id: &str,
    ) -> Result<Option<AccountStanding>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT display_name, email_verified_at, failed_logins, locked_until, last_login_at \
                 FROM users WHERE id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| {
                Ok(AccountStanding {
                    display_name: row.opt_text("display_name")?,
                    email_verified_at_ms: row.opt_int("email_verified_at")?,
                    failed_logins: row.uint("failed_logins")?,
                    locked_until_ms: row.opt_int("locked_until")?,
                    last_login_at_ms: row.opt_int("last_login_at")?,
                })
            })
            .transpose()
        })
    }

    /// Counts a failed login (one atomic increment, so concurrent guesses all count) and
    /// locks the account until `now + lock_for(failures)` when that says so. Returns the
    /// lock's end, if any.
    pub async fn record_failed_login(
        &self,
        user_id: &str,
        lock_for_ms: impl Fn(u64) -> Option<u64>,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let failures: u64 = with_pool!(&self.db, |pool| {
            let row = sqlx::query(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => row.uint::<u64>("failed_logins")?,
                None => return Ok(None),
            }
        });
        let Some(delay) = lock_for_ms(failures) else {
            return Ok(None);
        };
        let until = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        with_pool!(&self.db, |pool| {
            sqlx::query("UPDATE users SET locked_until = $1 WHERE id = $2")
                .bind(until)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(Some(until))
    }

    /// A successful login: the failure count and any lock are cleared.
    pub async fn record_successful_login(&self, user_id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Sets a user's display name (`None` clears it); false when there is no such user.
    pub async fn set_display_name(
        &self,
        user_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
                .bind(display_name)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Changes a user's e-mail (stored trimmed and lower-cased) and marks it unverified; an
    /// address another account holds is [`StoreError::Conflict`].
    pub async fn set_user_email(&self, user_id: &str, email: &str) -> Result<bool, StoreError> {
        let email = normalize_email(email);
        with_pool!(&self.db, |pool| {
            let done =
                sqlx::query("UPDATE users SET email = $1, email_verified_at = NULL WHERE id = $2")
                    .bind(&email)
                    .bind(user_id)
                    .execute(pool)
                    .await
                    .map_err(|error| conflict_on_unique(error, "e-mail already registered"))?;
            Ok(done.rows_affected() == 1)
        })
    }
}

fn session_from_row(row: &impl RowExt) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        created_at_ms: row.int("created_at")?,
        last_seen_at_ms: row.int("last_seen_at")?,
        expires_at_ms: row.int("expires_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

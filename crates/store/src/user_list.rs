//! The administrators' view of accounts: one page of users matching a filter, with the
//! number of matches, for `GET /admin/users`.

use crate::db::{RowExt, escape_like, with_pool};
use crate::users::{user_columns, user_from_row};
use crate::{Page, Paged, Store, StoreError, User};

/// Which users to list; every `None` matches everyone.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users whose e-mail contains this text (e-mails are stored lower-case, so the
    /// match ignores case).
    pub email_contains: Option<String>,
    pub plan: Option<String>,
    pub disabled: Option<bool>,
    pub is_admin: Option<bool>,
}

/// Oldest first: a new sign-up does not shift the pages an administrator is reading.
const MATCHING: &str = "FROM users WHERE ($1 IS NULL OR email LIKE $1 ESCAPE '\\') \
     AND ($2 IS NULL OR plan = $2) AND ($3 IS NULL OR disabled = $3) \
     AND ($4 IS NULL OR is_admin = $4)";

impl Store {
    /// One page of the users matching `filter`, oldest first, with the number of matches.
    pub async fn list_users_page(
        &self,
        filter: &UserFilter,
        page: Page,
    ) -> Result<Paged<User>, StoreError> {
        let pattern = filter
            .email_contains
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| format!("%{}%", escape_like(&text.to_lowercase())));
        let disabled = filter.disabled.map(i64::from);
        let is_admin = filter.is_admin.map(i64::from);
        let count_sql = format!("SELECT COUNT(*) AS n {MATCHING}");
        let list_sql = format!(
            "SELECT {} {MATCHING} ORDER BY created_at, id LIMIT $5 OFFSET $6",
            user_columns!()
        );
        with_pool!(&self.db, |pool| {
            let total_count = sqlx::query(sqlx::AssertSqlSafe(count_sql))
                .bind(pattern.as_deref())
                .bind(filter.plan.as_deref())
                .bind(disabled)
                .bind(is_admin)
                .fetch_one(pool)
                .await?
                .uint("n")?;
            let items = sqlx::query(sqlx::AssertSqlSafe(list_sql))
                .bind(pattern.as_deref())
                .bind(filter.plan.as_deref())
                .bind(disabled)
                .bind(is_admin)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?
                .iter()
                .map(user_from_row)
                .collect::<Result<_, _>>()?;
            Ok(Paged { items, total_count })
        })
    }
}

//! `selextract user …`: the operator's account commands — create, list, disable, enable,
//! set-plan, promote, demote, set-password. Each prints what it did; a user is named by
//! e-mail, and an unknown e-mail is an error that names it. Each change is written to the
//! audit log with the actor `cli` (as `admin_user_changed`, `password_changed` or `signup`),
//! like the same change made through the admin API.

use std::io::{BufRead, Read};

use anyhow::{Context, bail};
use selextract_accounts::password::{self, MAX_PASSWORD_BYTES};
use selextract_store::{AuditEntry, GuardedChange, Store, User};
use serde_json::json;

use super::admin::create_user;
use crate::config::Settings;
use crate::platform::{self, CommonArgs};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Plan name (default: the configured default plan).
        #[arg(long)]
        plan: Option<String>,
        /// Read the user's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their API keys are refused and their queued runs are not started.
    Disable { email: String },
    /// Enable a disabled user again.
    Enable { email: String },
    /// Move a user to another configured plan.
    SetPlan { email: String, plan: String },
    /// Make a user an administrator.
    Promote { email: String },
    /// Take the administrator flag away (refused for the last enabled administrator).
    Demote { email: String },
    /// Set a user's password, read from the first line of standard input.
    SetPassword {
        email: String,
        /// Read the password from standard input (required: passwords are never arguments,
        /// which other local users could read from the process list).
        #[arg(long)]
        password_stdin: bool,
    },
}

pub async fn run(common: CommonArgs, command: UserCommand) -> anyhow::Result<()> {
    let settings = platform::load_settings(&common)?;
    let store = platform::open_store(&settings).await?;
    match command {
        UserCommand::Create {
            email,
            admin,
            plan,
            password_stdin,
        } => {
            // The password is read and checked first, so a refused one creates nobody.
            let hash = if password_stdin {
                Some(read_and_hash_password(&settings)?)
            } else {
                None
            };
            let user = create_user(&store, &settings, &email, admin, plan.as_deref(), hash).await?;
            let details = json!({
                "email": user.email,
                "via": "cli",
                "plan": user.plan,
                "is_admin": user.is_admin,
                "with_password": password_stdin,
            });
            record_audit(&store, &user, "signup", details).await;
            println!(
                "created user {} ({}){}{}",
                user.email,
                user.id,
                if user.is_admin { ", admin" } else { "" },
                if password_stdin {
                    ", with a password"
                } else {
                    ""
                }
            );
        }
        UserCommand::List { json } => list_users(&store, json).await?,
        UserCommand::Disable { email } => {
            let user = find_user(&store, &email).await?;
            let change = store
                .disable_user_unless_last_admin(&user.id)
                .await
                .context("disabling the user")?;
            expect_changed(change, &user, "disable")?;
            record_change(&store, &user, "disabled", user.disabled, true).await;
            println!(
                "disabled user {} ({}): their runs are not started and their API keys are refused \
                 (by running servers within server.credential_check_interval_ms, 1 s by default)",
                user.email, user.id
            );
        }
        UserCommand::Enable { email } => {
            let user = find_user(&store, &email).await?;
            if !store.set_user_disabled(&user.id, false).await? {
                bail!("no user with e-mail {:?}", user.email);
            }
            record_change(&store, &user, "disabled", user.disabled, false).await;
            println!("enabled user {} ({})", user.email, user.id);
        }
        UserCommand::SetPlan { email, plan } => {
            let user = find_user(&store, &email).await?;
            set_plan(&store, &settings, &user, &plan).await?;
        }
        UserCommand::Promote { email } => {
            let user = find_user(&store, &email).await?;
            let change = store.set_user_admin(&user.id, true).await?;
            expect_changed(change, &user, "promote")?;
            record_change(&store, &user, "is_admin", user.is_admin, true).await;
            println!(
                "promoted user {} ({}) to administrator",
                user.email, user.id
            );
        }
        UserCommand::Demote { email } => {
            let user = find_user(&store, &email).await?;
            let change = store.set_user_admin(&user.id, false).await?;
            expect_changed(change, &user, "demote")?;
            record_change(&store, &user, "is_admin", user.is_admin, false).await;
            println!(
                "demoted user {} ({}): no longer an administrator",
                user.email, user.id
            );
        }
        UserCommand::SetPassword {
            email,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("set-password reads the password from standard input: pass --password-stdin");
            }
            let user = find_user(&store, &email).await?;
            let hash = read_and_hash_password(&settings)?;
            if !store.set_user_password_hash(&user.id, Some(&hash)).await? {
                bail!("no user with e-mail {:?}", user.email);
            }
            let details = json!({"email": user.email, "via": "cli"});
            record_audit(&store, &user, "password_changed", details).await;
            println!("set the password of user {} ({})", user.email, user.id);
        }
    }
    Ok(())
}

/// The user with this e-mail (matched ignoring case and surrounding spaces), or an error
/// that names it.
async fn find_user(store: &Store, email: &str) -> anyhow::Result<User> {
    store
        .find_user_by_email(email)
        .await
        .with_context(|| format!("looking up the user {email:?}"))?
        .with_context(|| {
            format!("no user with e-mail {email:?} (`selextract user list` shows them)")
        })
}

/// Records `admin_user_changed` for one field, in the shape the admin API writes, when the
/// value really changed.
async fn record_change<T: PartialEq + serde::Serialize>(
    store: &Store,
    user: &User,
    field: &str,
    from: T,
    to: T,
) {
    if from == to {
        return;
    }
    let details = json!({"email": user.email, "changes": {field: {"from": from, "to": to}}});
    record_audit(store, user, "admin_user_changed", details).await;
}

/// Appends an entry with the actor `cli` and no address. The change it records is made
/// already, so a failure to write it is a warning, not the command's failure.
async fn record_audit(store: &Store, user: &User, event: &str, details: serde_json::Value) {
    let entry = AuditEntry {
        user_id: Some(&user.id),
        actor: Some("cli"),
        event,
        ip: None,
        details,
    };
    if let Err(error) = store.record_audit(&entry).await {
        eprintln!("warning: could not write the audit entry {event:?}: {error}");
    }
}

fn expect_changed(change: GuardedChange, user: &User, verb: &str) -> anyhow::Result<()> {
    match change {
        GuardedChange::Changed => Ok(()),
        // Deleted between the lookup and the change.
        GuardedChange::NoSuchUser => bail!("no user with e-mail {:?}", user.email),
        GuardedChange::LastEnabledAdmin => bail!(
            "refusing to {verb} {}: it is the last enabled administrator (promote another \
             user first)",
            user.email
        ),
    }
}

async fn set_plan(
    store: &Store,
    settings: &Settings,
    user: &User,
    plan_name: &str,
) -> anyhow::Result<()> {
    if !settings.billing.plans.contains_key(plan_name) {
        let known: Vec<&str> = settings.billing.plans.keys().map(String::as_str).collect();
        bail!(
            "no plan named {plan_name:?} (configured plans: {})",
            known.join(", ")
        );
    }
    let (_, plan) = settings.billing.plan_for(plan_name);
    if !store
        .set_user_plan(&user.id, plan_name, plan.max_concurrent_runs)
        .await
        .context("changing the plan")?
    {
        bail!("no user with e-mail {:?}", user.email);
    }
    record_change(store, user, "plan", user.plan.as_str(), plan_name).await;
    // Once per user and month: a user who already had this month's grant keeps it.
    selextract_scheduler::grant_this_month(store, &settings.billing, &user.id, plan_name)
        .await
        .context("granting the plan's compute units")?;
    println!(
        "moved user {} ({}) from plan {} to plan {plan_name} (at most {} concurrent runs)",
        user.email, user.id, user.plan, plan.max_concurrent_runs
    );
    Ok(())
}

async fn list_users(store: &Store, json: bool) -> anyhow::Result<()> {
    let users = store.list_users().await.context("listing users")?;
    if json {
        let rows: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                let mut row = serde_json::to_value(user).unwrap_or_default();
                row["has_password"] = serde_json::Value::Bool(user.password_hash.is_some());
                row
            })
            .collect();
        return super::print_report(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!(
        "{:<40} {:<16} {:<5} {:<8} {:<8} {}\n",
        "EMAIL", "PLAN", "ADMIN", "STATUS", "PASSWORD", "ID"
    );
    for user in &users {
        out.push_str(&format!(
            "{:<40} {:<16} {:<5} {:<8} {:<8} {}\n",
            user.email,
            user.plan,
            if user.is_admin { "yes" } else { "no" },
            if user.disabled { "disabled" } else { "enabled" },
            if user.password_hash.is_some() {
                "set"
            } else {
                "none"
            },
            user.id
        ));
    }
    out.push_str(&format!("{} users\n", users.len()));
    super::print_report(&out)
}

/// Reads the first line of standard input (without its line ending), checks it against the
/// password rules and hashes it with the `[auth.password]` cost. At most a little more than
/// the longest allowed password is read, so a huge input is refused without being buffered.
fn read_and_hash_password(settings: &Settings) -> anyhow::Result<String> {
    let limit = u64::try_from(MAX_PASSWORD_BYTES).unwrap_or(u64::MAX) + 3;
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit)
        .read_until(b'\n', &mut line)
        .context("reading the password from standard input")?;
    if line.is_empty() {
        bail!("--password-stdin: standard input is empty; write the password as its first line");
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    let password = String::from_utf8(line)
        .map_err(|_| anyhow::anyhow!("--password-stdin: the password is not valid UTF-8"))?;
    password::hash_password(&settings.auth.password, &password)
        .map_err(|error| anyhow::anyhow!("--password-stdin: {error}"))
}

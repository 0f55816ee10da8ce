//! Operator commands that manage the installation: `key create`, `config print`, the user
//! creation shared by `user create` (commands/user.rs), and the first-start bootstrap used
//! by `serve`.

use anyhow::{Context, bail};
use selextract_store::{NewApiKey, NewUser, Store, StoreError};

use crate::config::Settings;
use crate::platform::{self, CommonArgs};

/// Every scope, for the bootstrap admin key and as the default of `key create`.
pub const ALL_SCOPES: [&str; 5] = [
    "tasks:read",
    "tasks:write",
    "results:read",
    "keys:write",
    "billing:read",
];

pub(crate) const BOOTSTRAP_EMAIL: &str = "admin@localhost";

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user and print it (shown only this once).
    Create {
        #[arg(long)]
        email: String,
        /// Comma-separated scopes (default: all).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expire the key after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration with secrets masked.
    Print,
}

pub async fn key(common: CommonArgs, command: KeyCommand) -> anyhow::Result<()> {
    let settings = platform::load_settings(&common)?;
    let store = platform::open_store(&settings).await?;
    match command {
        KeyCommand::Create {
            email,
            scopes,
            name,
            expires_in_days,
        } => {
            let Some(user) = store.find_user_by_email(&email).await? else {
                bail!(
                    "no user with e-mail {email:?}; create one with `selextract user create --email {email}`"
                );
            };
            let scopes: Vec<String> = if scopes.is_empty() {
                ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect()
            } else {
                scopes
            };
            for scope in &scopes {
                if !ALL_SCOPES.contains(&scope.as_str()) {
                    bail!(
                        "--scopes: unknown scope {scope:?} (known: {})",
                        ALL_SCOPES.join(", ")
                    );
                }
            }
            let expires =
                expires_in_days.map(|days| platform::now_ms() + i64::from(days) * 86_400_000);
            let key = create_key(&store, &user.id, &name, scopes, expires).await?;
            println!("{key}");
        }
    }
    Ok(())
}

pub fn config(common: CommonArgs, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Print => {
            let settings = platform::load_settings(&common)?;
            super::print_report(&settings.to_masked_toml()?)?;
        }
    }
    Ok(())
}

/// Creates a user on a configured plan (with a password hash, when given) and grants this
/// month's compute units; used by `user create` and the first-start bootstrap.
pub(crate) async fn create_user(
    store: &Store,
    settings: &Settings,
    email: &str,
    admin: bool,
    plan: Option<&str>,
    password_hash: Option<String>,
) -> anyhow::Result<selextract_store::User> {
    let email = selextract_accounts::Email::parse(email)
        .map_err(|error| anyhow::anyhow!("--email: {email:?}: {error}"))?;
    let plan_name = plan.unwrap_or(&settings.billing.default_plan).to_owned();
    if !settings.billing.plans.contains_key(&plan_name) {
        bail!("--plan: no plan named {plan_name:?}");
    }
    let (_, plan) = settings.billing.plan_for(&plan_name);
    let new = NewUser {
        email: email.to_string(),
        password_hash,
        is_admin: admin,
        plan: plan_name,
        max_concurrent_runs: plan.max_concurrent_runs,
    };
    let user = match store.create_user(new).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            bail!("a user with e-mail {:?} exists already", email.as_str())
        }
        Err(error) => return Err(error).context("creating the user"),
    };
    selextract_scheduler::grant_this_month(store, &settings.billing, &user.id, &user.plan)
        .await
        .context("granting the plan's compute units")?;
    Ok(user)
}

async fn create_key(
    store: &Store,
    user_id: &str,
    name: &str,
    scopes: Vec<String>,
    expires_at_ms: Option<i64>,
) -> anyhow::Result<String> {
    let (full_key, public_id, secret_hash) = selextract_server::keys::generate_api_key();
    store
        .insert_api_key(NewApiKey {
            user_id: user_id.to_owned(),
            public_id,
            secret_hash,
            name: name.to_owned(),
            scopes,
            expires_at_ms,
        })
        .await
        .context("storing the API key")?;
    Ok(full_key)
}

/// On the very first start (no user at all), create the admin user and return a fresh API
/// key for it, to be printed once.
pub async fn bootstrap_first_admin(
    store: &Store,
    settings: &Settings,
) -> anyhow::Result<Option<String>> {
    if store.count_users().await.context("counting users")? > 0 {
        return Ok(None);
    }
    let user = match create_user(store, settings, BOOTSTRAP_EMAIL, true, None, None).await {
        Ok(user) => user,
        // Another process bootstrapped at the same moment: it prints the key.
        Err(_) if store.count_users().await.unwrap_or(0) > 0 => return Ok(None),
        Err(error) => return Err(error),
    };
    let scopes = ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    Ok(Some(
        create_key(store, &user.id, "bootstrap", scopes, None).await?,
    ))
}

//! `selextract serve`: the API with embedded workers (or `--no-worker`), and the first-start
//! bootstrap that prints an admin API key once.

use std::net::SocketAddr;

use anyhow::Context;
use selextract_server::AppState;

use crate::platform::{self, CommonArgs};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8000).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Run only the API; start workers separately with `selextract worker`.
    #[arg(long)]
    pub no_worker: bool,
    /// Allow fetching loopback, private and link-local addresses (off by default).
    #[arg(long)]
    pub allow_private_networks: bool,
}

pub async fn run(common: CommonArgs, args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = platform::load_settings(&common)?;
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    // Checked before anything starts, so a bad `[smtp]` stops the process at once.
    let mailer = platform::mailer(&settings)?;
    let metrics = platform::install_metrics()?;
    let services = platform::Services::start(&settings, args.allow_private_networks).await?;
    let shutdown = platform::shutdown_on_signal();

    let listener = tokio::net::TcpListener::bind(settings.server.bind)
        .await
        .with_context(|| format!("listening on {}", settings.server.bind))?;
    let address = listener.local_addr().context("reading the bound address")?;
    // The address really bound (a port 0 resolved), which links fall back to.
    settings.server.bind = address;
    let bootstrap = super::admin::bootstrap_first_admin(&services.store, &settings).await?;
    let setup_link = match bootstrap {
        Some(_) => Some(admin_setup_link(&services.store, &settings).await?),
        None => None,
    };
    announce(
        address,
        bootstrap.as_deref(),
        setup_link.as_deref(),
        args.no_worker,
    );

    let worker = if args.no_worker {
        None
    } else {
        let deps = services.worker_deps();
        let config = platform::worker_config(&settings);
        let token = shutdown.clone();
        Some(tokio::spawn(async move {
            selextract_worker::run_worker(config, deps, token).await
        }))
    };
    services.spawn_scheduler(&settings, shutdown.clone());
    let mailer = std::sync::Arc::new(mailer);
    if !args.no_worker {
        services.spawn_deliveries(
            &settings,
            args.allow_private_networks,
            mailer.clone(),
            shutdown.clone(),
        );
    }
    let mut state = AppState::new(
        services.store.clone(),
        services.results.clone(),
        services.http.clone(),
        services.waker.clone(),
        platform::server_config(&settings),
        metrics,
    )
    .with_rate_limiter(platform::rate_limiter(&settings)?)
    .with_shared_mailer(mailer)
    .with_notify_config(platform::notify_config(
        &settings,
        args.allow_private_networks,
    ))
    .with_auth_secret(settings.auth.secret.clone());
    if let Some(fetcher) = services.browser_fetcher() {
        state = state.with_browser(fetcher);
    }
    selextract_server::serve(listener, state, shutdown.clone())
        .await
        .context("serving HTTP")?;
    let worker_outcome = match worker {
        Some(worker) => worker
            .await
            .context("the embedded worker panicked")
            .and_then(|r| r),
        None => Ok(()),
    };
    // No Chromium outlives the process, whatever happened to the worker.
    services.shutdown().await;
    worker_outcome
}

/// A one-time link (24 h) that lets the operator set the first administrator's password
/// in a browser, without the CLI. Only the token's hash is stored.
async fn admin_setup_link(
    store: &selextract_store::Store,
    settings: &crate::config::Settings,
) -> anyhow::Result<String> {
    use selextract_accounts::tokens::{hash_opaque_token, new_opaque_token};
    let admin = store
        .find_user_by_email(super::admin::BOOTSTRAP_EMAIL)
        .await
        .context("finding the first admin")?
        .context("the first admin vanished")?;
    let token = new_opaque_token();
    let expires_at_ms = platform::now_ms().saturating_add(24 * 3600 * 1000);
    store
        .create_account_token(&selextract_store::NewAccountToken {
            token_hash: &hash_opaque_token(&token),
            purpose: selextract_store::AccountTokenPurpose::AdminSetup,
            user_id: Some(&admin.id),
            email: &admin.email,
            created_by: None,
            expires_at_ms,
        })
        .await
        .context("storing the admin setup link")?;
    Ok(settings.server.link("/account/reset-password", &token))
}

/// Print where the API listens (and the first-start key). Written with `writeln!` and the
/// errors ignored: a closed stdout (a supervisor that stopped reading) must not kill the
/// server.
fn announce(
    address: SocketAddr,
    first_key: Option<&str>,
    setup_link: Option<&str>,
    no_worker: bool,
) {
    use std::io::Write;
    let mut text = format!(
        "Selextract {} is listening on http://{address}\n",
        env!("CARGO_PKG_VERSION")
    );
    if no_worker {
        text.push_str("API only (--no-worker): start workers with `selextract worker`.\n");
    }
    if let Some(key) = first_key {
        text.push_str(&format!(
            "\nFirst start: created the admin user admin@localhost. Its API key (shown only this once):\n\n    \
             {key}\n\nTry it:\n    curl -H 'Authorization: Bearer {key}' http://{address}/api/v1/tasks\n\
             More users and keys: selextract user create --email you@example.com && \
             selextract key create --email you@example.com\n"
        ));
    }
    if let Some(link) = setup_link {
        text.push_str(&format!(
            "\nTo set the admin's password (for the dashboard), open this link within 24 hours; \
             it works once:\n\n    {link}\n"
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

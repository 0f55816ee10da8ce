//! A real OpenID provider for one test: the certified `oidc-provider` npm package (pinned in
//! `crates/testkit/oidc/package-lock.json`, installed by `scripts/ensure-test-services`)
//! run by Node on a loopback port the kernel picks, killed when dropped.
//!
//! The test registers one client (its id, secret and redirect URI) and any accounts;
//! [`OidcProvider::sign_in`] then plays the browser: it follows the authorization URL the
//! application produced, submits the provider's login form for one account, and returns
//! where the provider sends the browser back (the application's callback with `code` and
//! `state`), without following it, so the test can deliver it to whichever API process it
//! likes. The provider requires PKCE, checks the redirect URI exactly, and signs ID tokens
//! with a key made for this process. Like a strict provider, it puts the `email` scope's
//! claims in the userinfo response, not in the ID token.

#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use url::Url;

/// An account the provider knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcTestAccount {
    /// The provider's stable id for it (`sub`), and what the login form selects.
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

impl OidcTestAccount {
    pub fn new(sub: &str, email: &str, email_verified: bool) -> OidcTestAccount {
        OidcTestAccount {
            sub: sub.to_owned(),
            email: email.to_owned(),
            email_verified,
            name: format!("Test {sub}"),
        }
    }
}

/// How to start the provider.
#[derive(Debug, Clone)]
pub struct OidcProviderOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The one redirect URI registered for the client (the application's callback).
    pub redirect_uri: String,
    pub accounts: Vec<OidcTestAccount>,
}

impl OidcProviderOptions {
    /// A client `selextract-test` with a secret, and two accounts: `verified`
    /// (verified@oidc.test, `email_verified: true`) and `unverified`
    /// (unverified@oidc.test, `email_verified: false`).
    pub fn new(redirect_uri: &str) -> OidcProviderOptions {
        OidcProviderOptions {
            client_id: "selextract-test".to_owned(),
            client_secret: "test-client-secret-0123456789abcdef".to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            accounts: vec![
                OidcTestAccount::new("verified", "verified@oidc.test", true),
                OidcTestAccount::new("unverified", "unverified@oidc.test", false),
            ],
        }
    }

    pub fn account(mut self, account: OidcTestAccount) -> OidcProviderOptions {
        self.accounts.push(account);
        self
    }
}

/// Where the provider sent the browser at the end of [`OidcProvider::sign_in`].
#[derive(Debug, Clone)]
pub struct SignInRedirect {
    /// The full redirect URL (the registered redirect URI with `code`, `state` and `iss`,
    /// or `error`).
    pub url: Url,
}

impl SignInRedirect {
    /// Path and query, to send to an in-process router.
    pub fn path_and_query(&self) -> String {
        match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_owned(),
        }
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// A running provider; dropping it kills the process.
pub struct OidcProvider {
    child: Child,
    /// Held so the provider sees end-of-file (and exits) if this process dies unannounced.
    _stdin: Option<ChildStdin>,
    /// What the provider wrote (stderr, and stdout after its first line), for failure
    /// messages.
    stderr: Arc<Mutex<String>>,
    port: u16,
    options: OidcProviderOptions,
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The directory of the provider script and its `node_modules`.
pub fn oidc_provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl OidcProvider {
    /// Starts the provider with [`OidcProviderOptions::new`].
    pub fn start(redirect_uri: &str) -> OidcProvider {
        OidcProvider::start_with(OidcProviderOptions::new(redirect_uri))
    }

    /// Starts `node provider.mjs` and waits until its discovery document answers. Panics
    /// with what to do when Node or the package is missing: the tests that need a provider
    /// fail rather than skip (scripts/ensure-test-services installs both).
    pub fn start_with(options: OidcProviderOptions) -> OidcProvider {
        let dir = oidc_provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the oidc-provider npm package is not installed in {}: run scripts/ensure-test-services",
            dir.display()
        );
        let config = json!({
            "clients": [{
                "client_id": options.client_id,
                "client_secret": options.client_secret,
                "redirect_uris": [options.redirect_uri],
            }],
            "accounts": options.accounts.iter().map(|account| json!({
                "sub": account.sub,
                "email": account.email,
                "email_verified": account.email_verified,
                "name": account.name,
            })).collect::<Vec<_>>(),
        });
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("OIDC_TEST_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node is not installed: run scripts/ensure-test-services");
        let stdin = child.stdin.take();
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let stdout = child.stdout.take().expect("piped stdout");
        let port = read_port(stdout, &mut child, &stderr);
        let provider = OidcProvider {
            child,
            _stdin: stdin,
            stderr,
            port,
            options,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("reqwest client"),
        };
        provider.wait_for_discovery();
        provider
    }

    /// `http://127.0.0.1:PORT`, exactly as the ID tokens' `iss` spells it.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn client_id(&self) -> &str {
        &self.options.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.options.client_secret
    }

    pub fn redirect_uri(&self) -> &str {
        &self.options.redirect_uri
    }

    pub fn accounts(&self) -> &[OidcTestAccount] {
        &self.options.accounts
    }

    /// What the provider has written: its warnings, notices and errors.
    pub fn stderr_log(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Plays the browser from the application's authorization URL to the provider's
    /// redirect back: logs `account` (a `sub`) in through the provider's form.
    pub async fn sign_in(&self, authorize_url: &str, account: &str) -> SignInRedirect {
        self.interact(authorize_url, &[("account", account)]).await
    }

    /// Like [`OidcProvider::sign_in`], but the user refuses: the provider redirects back
    /// with `error=access_denied`.
    pub async fn deny(&self, authorize_url: &str) -> SignInRedirect {
        self.interact(authorize_url, &[("deny", "1")]).await
    }

    async fn interact(&self, authorize_url: &str, form: &[(&str, &str)]) -> SignInRedirect {
        let mut jar = CookieJar::default();
        let start = Url::parse(authorize_url).expect("authorization URL");
        assert_eq!(
            start.origin(),
            Url::parse(&self.issuer()).expect("issuer").origin(),
            "the authorization URL does not point at this provider: {authorize_url}"
        );
        // GET the authorization endpoint → the interaction page.
        let interaction = self.get(&start, &mut jar).await;
        let form_page = self.get(&interaction, &mut jar).await;
        assert_eq!(form_page, interaction, "the login form did not redirect");
        // POST the form → resume at the authorization endpoint → the redirect back.
        let response = self
            .http
            .post(interaction.clone())
            .header("cookie", jar.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .expect("posting the login form");
        jar.store(response.headers());
        let mut next = redirect_target(&interaction, &response);
        for _ in 0..5 {
            if !next.as_str().starts_with(&self.issuer()) {
                return SignInRedirect { url: next };
            }
            next = self.get(&next, &mut jar).await;
        }
        panic!("the provider kept redirecting to itself: {next}")
    }

    /// GETs `url`; a redirect answers its target, anything else answers `url` itself after
    /// checking it was a page (200).
    async fn get(&self, url: &Url, jar: &mut CookieJar) -> Url {
        let response = self
            .http
            .get(url.clone())
            .header("cookie", jar.header())
            .send()
            .await
            .expect("request to the provider");
        jar.store(response.headers());
        if response.status().is_redirection() {
            return redirect_target(url, &response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{url} answered {status}: {body}\nprovider stderr:\n{}",
            self.stderr_log()
        );
        url.clone()
    }

    fn wait_for_discovery(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let request = format!(
                    "GET /.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                    && answer.contains(&format!("\"issuer\":\"{}\"", self.issuer()))
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the OpenID provider on port {} did not answer discovery; stderr:\n{}",
                self.port,
                self.stderr_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `listening <port>` from the provider's stdout (it listens before printing).
/// The rest of stdout keeps being read into `log`: a provider writing to a closed pipe
/// would die of EPIPE (oidc-provider prints notices with `console.log`).
fn read_port(
    stdout: std::process::ChildStdout,
    child: &mut Child,
    log: &Arc<Mutex<String>>,
) -> u16 {
    let (sender, receiver) = std::sync::mpsc::channel();
    let sink = Arc::clone(log);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        let mut rest = String::new();
        while let Ok(1..) = reader.read_line(&mut rest) {
            if let Ok(mut log) = sink.lock() {
                log.push_str(&rest);
            }
            rest.clear();
        }
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_default();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|port| port.parse().ok());
    match port {
        Some(port) => port,
        None => {
            let _ = child.kill();
            let status = child.wait().ok();
            // Let the reader thread take what the process wrote before it died.
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "the OpenID provider (node provider.mjs in {}) did not start: printed {line:?}, exit {status:?}, stderr:\n{}\nrun scripts/ensure-test-services",
                oidc_provider_dir().display(),
                log.lock().map(|text| text.clone()).unwrap_or_default()
            )
        }
    }
}

/// Drains `stream` into a shared string on a thread of its own.
fn collect(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut buffer) {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        }
    });
    text
}

fn redirect_target(base: &Url, response: &reqwest::Response) -> Url {
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("{base} answered {} without Location", response.status()));
    base.join(location).expect("Location is a URL")
}

/// The provider's cookies by name: paths are ignored (the provider does not mind extra
/// cookies), deleted ones (empty or expired in 1970) removed.
#[derive(Debug, Default)]
struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    fn store(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let deleted = value.is_empty() || text.contains("1970");
            if deleted {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

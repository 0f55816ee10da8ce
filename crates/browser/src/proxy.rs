//! The guarding proxy in front of Chromium: an HTTP proxy on 127.0.0.1 through which every
//! request of a render goes (documents, sub-resources, fetches of workers and service
//! workers, WebSockets). Each request is handled on its own, even when Chromium sends several
//! to different hosts over one connection: CONNECT tunnels (https, wss) and absolute-form
//! requests (http, ws upgrades) are vetted by the render's [`RenderGuard`] and connected to
//! the addresses it vetted, never resolved again. Refusals get a 403 and are counted for the
//! render.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::guard::{Refusal, RenderGuard};
use crate::upstream::Upstream;

/// Bound on a request's head (start line and headers): Chromium's are a few KiB.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a target may take to answer with a response head.
pub(crate) const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// A running guarding proxy; it stops, with every connection and tunnel it carries, when
/// dropped.
#[derive(Debug)]
pub(crate) struct GuardProxy {
    addr: SocketAddr,
    _stop: DropGuard,
}

impl GuardProxy {
    /// The `--proxy-server` / `proxyServer` value for Chromium.
    pub(crate) fn server(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts a guarding proxy on 127.0.0.1:0 for `guard`, chained to `upstream` if given.
pub(crate) async fn start(
    guard: Arc<RenderGuard>,
    upstream: Option<Upstream>,
) -> std::io::Result<GuardProxy> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let state = Arc::new(State {
        guard,
        upstream,
        stop: stop.clone(),
    });
    tokio::spawn(accept_loop(listener, state));
    Ok(GuardProxy {
        addr,
        _stop: stop.drop_guard(),
    })
}

struct State {
    guard: Arc<RenderGuard>,
    upstream: Option<Upstream>,
    stop: CancellationToken,
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = state.stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let stop = state.stop.clone();
            tokio::select! {
                () = serve_connection(stream, state) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, state).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "guarding proxy connection");
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return handle_connect(req, state).await;
    }
    handle_forward(req, state).await
}

/// The target of a request, as `host` (IPv6 in brackets) and port.
fn target_of(uri: &Uri, default_port: u16) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let port = authority.port_u16().unwrap_or(default_port);
    Some((authority.host().to_owned(), port))
}

async fn vet(
    state: &State,
    host: &str,
    port: u16,
    shown: &str,
) -> Result<Vec<SocketAddr>, Response<Body>> {
    match state.guard.vet(host, port).await {
        Ok(addrs) => Ok(addrs),
        Err(refusal) => Err(refuse(state, shown, &refusal)),
    }
}

fn refuse(state: &State, shown: &str, refusal: &Refusal) -> Response<Body> {
    if refusal.is_blocked() {
        tracing::info!(target = %shown, reason = %refusal, "browser request refused by the URL guard");
        state.guard.record_blocked(shown);
        text_response(StatusCode::FORBIDDEN, "refused by the URL guard")
    } else {
        text_response(StatusCode::BAD_GATEWAY, "cannot resolve the host")
    }
}

/// A tunnel (https, wss): vetted, connected to the vetted address (or through the upstream),
/// then spliced once Chromium has its 200.
async fn handle_connect(mut req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    let Some((host, port)) = target_of(req.uri(), 443) else {
        return text_response(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let shown = format!("{host}:{port}");
    let addrs = match vet(&state, &host, port, &shown).await {
        Ok(addrs) => addrs,
        Err(response) => return response,
    };
    let target: Box<dyn Stream> = match &state.upstream {
        None => match connect_any(&addrs).await {
            Ok(stream) => Box::new(stream),
            Err(error) => return bad_gateway(&shown, &error.to_string()),
        },
        Some(upstream) => match upstream.tunnel(&host, port, &addrs).await {
            Ok(stream) => stream,
            Err(message) => return bad_gateway(&shown, &message),
        },
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let stop = state.stop.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        let mut target = target;
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut target) => {}
            () = stop.cancelled() => {}
        }
    });
    Response::new(empty())
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A plain request in absolute form (`GET http://host/path`): vetted and sent on a fresh
/// connection of its own to the vetted address, so the next request on Chromium's connection
/// is vetted afresh. WebSocket upgrades are spliced after the 101.
async fn handle_forward(mut req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    if req.uri().scheme_str() != Some("http") {
        return text_response(
            StatusCode::BAD_REQUEST,
            "only absolute http:// requests are proxied",
        );
    }
    let Some((host, port)) = target_of(req.uri(), 80) else {
        return text_response(StatusCode::BAD_REQUEST, "no host");
    };
    let shown = req.uri().to_string();
    let addrs = match vet(&state, &host, port, &shown).await {
        Ok(addrs) => addrs,
        Err(response) => return response,
    };
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    strip_hop_by_hop(req.headers_mut(), upgrade);
    let stream: Result<Box<dyn Stream>, String> = match &state.upstream {
        // An HTTP upstream gets the absolute form and connects itself.
        Some(upstream) if upstream.forwards_absolute_form() => upstream
            .connect()
            .await
            .map(|s| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| e.to_string()),
        direct_or_tunnel => {
            // Origin form for the origin server; the Host header stays as Chromium sent it.
            let origin_form = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .parse::<Uri>();
            match origin_form {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => return text_response(StatusCode::BAD_REQUEST, "bad path"),
            }
            match direct_or_tunnel {
                Some(upstream) => upstream.tunnel(&host, port, &addrs).await,
                None => connect_any(&addrs)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Stream>)
                    .map_err(|e| e.to_string()),
            }
        }
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(error) => return bad_gateway(&shown, &error),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(error) => return bad_gateway(&shown, &error.to_string()),
        };
    let stop = state.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = connection.with_upgrades() => {}
            () = stop.cancelled() => {}
        }
    });
    let response = match tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(req)).await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return bad_gateway(&shown, &error.to_string()),
        Err(_) => return text_response(StatusCode::GATEWAY_TIMEOUT, "the target did not answer"),
    };
    let (mut parts, body) = response.into_parts();
    if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, parts.status)
    {
        let mut server_response = Response::from_parts(parts, ());
        let server_upgrade = hyper::upgrade::on(&mut server_response);
        let (parts, ()) = server_response.into_parts();
        let stop = state.stop.clone();
        tokio::spawn(async move {
            let (Ok(client), Ok(server)) = (client_upgrade.await, server_upgrade.await) else {
                return;
            };
            let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                () = stop.cancelled() => {}
            }
        });
        return Response::from_parts(parts, empty());
    }
    strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, body.boxed())
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the headers that concern only one hop (RFC 9110 §7.6.1), keeping `Connection:
/// upgrade` and `Upgrade` for a WebSocket handshake.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade")
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for name in [
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "te",
        "trailer",
    ] {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Connects to the first vetted address that answers.
async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match timed_connect(TcpStream::connect(addr)).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

pub(crate) async fn timed_connect(
    connect: impl Future<Output = std::io::Result<TcpStream>>,
) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn bad_gateway(target: &str, message: &str) -> Response<Body> {
    tracing::debug!(%target, %message, "guarding proxy could not reach the target");
    text_response(StatusCode::BAD_GATEWAY, "cannot reach the target")
}

pub(crate) fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use selextract_fetch::guard::GuardPolicy;
    use selextract_testkit::FixtureSite;

    use super::*;

    /// A guarding proxy that allows `allowed` only, and a client connection to it.
    async fn proxy_allowing(
        allowed: SocketAddr,
    ) -> (
        Arc<RenderGuard>,
        GuardProxy,
        hyper::client::conn::http1::SendRequest<Body>,
    ) {
        let policy = GuardPolicy {
            allowed_private_addrs: vec![allowed],
            ..GuardPolicy::default()
        };
        let guard = RenderGuard::new(policy, false);
        let proxy = start(guard.clone(), None).await.expect("proxy starts");
        let addr = proxy.server().trim_start_matches("http://").to_owned();
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection.with_upgrades());
        (guard, proxy, sender)
    }

    fn get(uri: &str, host: &str) -> Request<Body> {
        Request::builder()
            .uri(uri)
            .header(header::HOST, host)
            .body(empty())
            .unwrap()
    }

    #[tokio::test]
    async fn each_request_on_one_connection_is_vetted_even_when_hosts_differ() {
        let allowed = FixtureSite::start().await;
        let refused = FixtureSite::start().await;
        let (guard, _proxy, mut sender) = proxy_allowing(allowed.addr()).await;
        let a = allowed.addr().to_string();
        let b = refused.addr().to_string();

        let first = sender
            .send_request(get(&format!("http://{a}/catalog"), &a))
            .await
            .expect("answered");
        let first_status = first.status();
        first.into_body().collect().await.expect("body");
        let second = sender
            .send_request(get(&format!("http://{b}/private/probe"), &b))
            .await
            .expect("answered on the same connection");
        let third = sender
            .send_request(get(&format!("http://{a}/item/1"), &a))
            .await
            .expect("answered on the same connection");

        assert_eq!(first_status, StatusCode::OK);
        assert_eq!(second.status(), StatusCode::FORBIDDEN);
        assert_eq!(third.status(), StatusCode::OK);
        assert!(
            refused.request_log().is_empty(),
            "{:?}",
            refused.request_log()
        );
        assert_eq!(allowed.hits("/catalog"), 1);
        assert_eq!(guard.blocked().count, 1);
    }

    #[tokio::test]
    async fn a_tunnel_to_a_refused_address_is_refused_and_counted() {
        let allowed = FixtureSite::start().await;
        let refused = FixtureSite::start().await;
        let (guard, _proxy, mut sender) = proxy_allowing(allowed.addr()).await;
        let b = refused.addr().to_string();
        let connect = Request::builder()
            .method(Method::CONNECT)
            .uri(b.as_str())
            .header(header::HOST, b.as_str())
            .body(empty())
            .unwrap();

        let response = sender.send_request(connect).await.expect("answered");

        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(refused.request_log().is_empty());
        assert_eq!(guard.blocked().urls, vec![b]);
    }

    #[tokio::test]
    async fn a_request_head_over_the_bound_is_refused_before_anything_is_sent() {
        let allowed = FixtureSite::start().await;
        let (_guard, _proxy, mut sender) = proxy_allowing(allowed.addr()).await;
        let a = allowed.addr().to_string();
        let mut request = get(&format!("http://{a}/catalog"), &a);
        request.headers_mut().insert(
            "x-padding",
            HeaderValue::from_str(&"x".repeat(MAX_HEADER_BYTES)).unwrap(),
        );

        let response = sender.send_request(request).await.expect("answered");

        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(allowed.request_log().is_empty());
    }
}

//! Route handlers of the fixture site; each route's behaviour is documented in the crate docs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::pages;
use crate::site::SiteState;

type Params = Query<HashMap<String, String>>;
type AppState = State<Arc<SiteState>>;

pub(crate) fn routes() -> Router<Arc<SiteState>> {
    Router::new()
        .route("/", get(index))
        .route("/catalog", get(catalogue))
        .route("/item/{id}", get(item))
        .route("/img/{file}", get(image))
        .route("/broken", get(broken))
        .route("/charset/cp1251-header", get(cp1251_header))
        .route("/charset/cp1251-meta", get(cp1251_meta))
        .route("/charset/sjis", get(shift_jis))
        .route("/redirect/chain/{n}", get(redirect_chain))
        .route("/redirect/loop", get(redirect_loop))
        .route("/redirect/to", get(redirect_to))
        .route("/status/{code}", get(status))
        .route("/flaky/{token}", get(flaky))
        .route("/ratelimited/{token}", get(rate_limited))
        .route("/slow", get(slow))
        .route("/slow-body", get(slow_body))
        .route("/robots.txt", get(robots_txt))
        .route("/private/{*rest}", get(private))
        .route("/big", get(big_streamed))
        .route("/big-declared", get(big_declared))
        .route("/base/page", get(base_page))
        .route("/base/sub/{*rest}", get(base_sub))
        .route("/gzip", get(gzip))
        .route("/headers", get(echo_headers))
        .route("/concurrency-probe", get(concurrency_probe))
        .merge(crate::js_pages::routes())
        .merge(crate::attacks::routes())
        .fallback(not_found)
}

fn html(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn encoded_html(content_type: &'static str, body: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)], "").into_response(),
        Err(_) => html(StatusCode::BAD_REQUEST, "invalid redirect target"),
    }
}

fn number_param(params: &HashMap<String, String>, name: &str, default: u64) -> u64 {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn index() -> Response {
    html(
        StatusCode::OK,
        pages::simple_page("Fixture Shop", "<a href=\"/catalog?page=1\">Catalogue</a>"),
    )
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        pages::simple_page("Not found", "No such page."),
    )
}

async fn catalogue(State(state): AppState, Query(params): Params) -> Response {
    let page = number_param(&params, "page", 1) as usize;
    let opts = &state.options;
    let body = pages::catalogue_page(page, opts.catalogue_pages, opts.items_per_page);
    let status = if page >= 1 && page <= opts.catalogue_pages {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    html(status, body)
}

async fn item(Path(id): Path<String>) -> Response {
    match id.parse::<usize>() {
        Ok(id) if id >= 1 => html(StatusCode::OK, pages::item_page(id)),
        _ => not_found().await,
    }
}

async fn image(Path(_file): Path<String>) -> Response {
    // Not a decodable image: tests only need the URL to exist and answer with an image type.
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "image/jpeg")],
        Bytes::from_static(b"\xff\xd8\xff\xd9"),
    )
        .into_response()
}

async fn broken() -> Response {
    html(StatusCode::OK, pages::BROKEN_PAGE)
}

async fn cp1251_header() -> Response {
    let page = pages::charset_page("", "Каталог", &pages::CYRILLIC_PRODUCTS, 201);
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&page);
    encoded_html("text/html; charset=windows-1251", bytes.into_owned())
}

async fn cp1251_meta() -> Response {
    let page = pages::charset_page(
        "<meta charset=\"windows-1251\">",
        "Каталог",
        &pages::CYRILLIC_PRODUCTS,
        201,
    );
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&page);
    encoded_html("text/html", bytes.into_owned())
}

async fn shift_jis() -> Response {
    let declaration = "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">";
    let page = pages::charset_page(declaration, "カタログ", &pages::JAPANESE_PRODUCTS, 301);
    let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&page);
    encoded_html("text/html", bytes.into_owned())
}

async fn redirect_chain(Path(n): Path<u64>) -> Response {
    if n == 0 {
        redirect("/catalog?page=1")
    } else {
        redirect(&format!("/redirect/chain/{}", n - 1))
    }
}

async fn redirect_loop() -> Response {
    redirect("/redirect/loop")
}

async fn redirect_to(Query(params): Params) -> Response {
    match params.get("url") {
        Some(url) => redirect(url),
        None => html(StatusCode::BAD_REQUEST, "missing url"),
    }
}

async fn status(Path(code): Path<u16>, Query(params): Params) -> Response {
    let Ok(status) = StatusCode::from_u16(code) else {
        return html(StatusCode::BAD_REQUEST, "invalid status");
    };
    let mut response = html(
        status,
        pages::simple_page(&format!("Status {code}"), "As requested."),
    );
    if let Some(value) = params
        .get("retry_after")
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn flaky(
    State(state): AppState,
    Path(token): Path<String>,
    Query(params): Params,
) -> Response {
    let fail = number_param(&params, "fail", 1) as usize;
    let seen = state.bump(&format!("flaky:{token}"));
    if seen <= fail {
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::simple_page("Server error", &format!("Failure {seen} of {fail}.")),
        )
    } else {
        html(
            StatusCode::OK,
            pages::simple_page("Recovered", &format!("OK after {fail} failures.")),
        )
    }
}

async fn rate_limited(
    State(state): AppState,
    Path(token): Path<String>,
    Query(params): Params,
) -> Response {
    let seconds = number_param(&params, "retry_after", 1);
    if state.bump(&format!("ratelimited:{token}")) > 1 {
        return html(
            StatusCode::OK,
            pages::simple_page("Welcome back", "Thanks for waiting."),
        );
    }
    let value = if params.get("date").is_some_and(|v| v == "1") {
        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
    } else {
        seconds.to_string()
    };
    let mut response = html(
        StatusCode::TOO_MANY_REQUESTS,
        pages::simple_page("Too many requests", "Slow down."),
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn slow(Query(params): Params) -> Response {
    let ms = number_param(&params, "ms", 1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    html(
        StatusCode::OK,
        pages::simple_page("Slow", &format!("Answered after {ms} ms.")),
    )
}

async fn slow_body(Query(params): Params) -> Response {
    let ms = number_param(&params, "ms", 1000);
    let stream = futures::stream::unfold(0u8, move |step| async move {
        match step {
            0 => Some((
                Ok::<_, Infallible>(Bytes::from_static(
                    b"<!DOCTYPE html><html><body><p>start</p>",
                )),
                1,
            )),
            1 => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Some((Ok(Bytes::from_static(b"<p>end</p></body></html>")), 2))
            }
            _ => None,
        }
    });
    html(StatusCode::OK, Body::from_stream(stream))
}

async fn robots_txt(State(state): AppState) -> Response {
    let body = state
        .options
        .robots_txt
        .clone()
        .unwrap_or_else(|| "User-agent: *\nAllow: /\n".to_owned());
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn private(Path(rest): Path<String>) -> Response {
    html(
        StatusCode::OK,
        pages::simple_page("Private", &format!("Private page {rest}.")),
    )
}

const MIB: usize = 1024 * 1024;
const BIG_CHUNK: usize = 64 * 1024;

fn filler(len: usize) -> Bytes {
    let line = b"<p>filler text for a large page</p>\n";
    Bytes::from(line.iter().copied().cycle().take(len).collect::<Vec<u8>>())
}

async fn big_streamed(Query(params): Params) -> Response {
    let mb = number_param(&params, "mb", 1) as usize;
    let chunk = filler(BIG_CHUNK);
    let chunks = mb * (MIB / BIG_CHUNK);
    let stream =
        futures::stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(chunk.clone())));
    html(StatusCode::OK, Body::from_stream(stream))
}

async fn big_declared(Query(params): Params) -> Response {
    // Capped so that a mistyped test cannot exhaust memory.
    let mb = (number_param(&params, "mb", 1) as usize).min(256);
    html(StatusCode::OK, filler(mb * MIB))
}

async fn base_page() -> Response {
    html(StatusCode::OK, pages::BASE_PAGE)
}

async fn base_sub(Path(rest): Path<String>) -> Response {
    html(
        StatusCode::OK,
        pages::simple_page("Base target", &format!("Reached {rest}.")),
    )
}

/// The body of `/gzip`, before compression.
pub const GZIP_TEXT: &str = "This page travelled gzip-compressed.";

async fn gzip(headers: HeaderMap) -> Response {
    let page = pages::simple_page("Gzip", GZIP_TEXT);
    let accepts_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|coding| coding.trim().starts_with("gzip")));
    if !accepts_gzip {
        return html(StatusCode::OK, page);
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = encoder
        .write_all(page.as_bytes())
        .and_then(|()| encoder.finish());
    match compressed {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "compression failed"),
    }
}

async fn echo_headers(headers: HeaderMap) -> Response {
    axum::Json(crate::guard_pages::headers_json(&headers)).into_response()
}

async fn concurrency_probe(State(state): AppState, Query(params): Params) -> Response {
    let ms = number_param(&params, "ms", 200);
    let _in_flight = state.enter_probe();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    html(StatusCode::OK, pages::simple_page("Probe", "Counted."))
}

//! Test kit (dev only): fixture web sites served on 127.0.0.1:0 and a tiny HTTP proxy.
//!
//! [`FixtureSite`] serves deterministic pages whose records other crates' tests assert. Start
//! it with [`FixtureSite::start`] inside a tokio runtime or [`FixtureSite::start_blocking`]
//! from synchronous code; dropping it stops the server. Every request is recorded
//! ([`FixtureSite::hits`], [`FixtureSite::request_log`]) at arrival, before it is handled.
//!
//! # Routes
//!
//! ## `/catalog?page=N` — paginated product catalogue
//! `catalogue_pages` pages (default 5) of `items_per_page` products (default 10); a missing
//! `page` means 1. Page N holds product ids `(N-1)*items_per_page + 1 ..= N*items_per_page`,
//! in order, each as
//! ```html
//! <div class="product" data-id="ID">
//!   <h2><a href="/item/ID">Product ID</a></h2>
//!   <span class="price">$X.YZ</span>
//!   <span class="stars" data-rating="R"></span>
//!   <img src="/img/ID.jpg" alt="Product ID">
//!   <span class="tag">…</span> (zero to two)
//!   <button class="add-to-cart" …>Add to cart</button>
//! </div>
//! ```
//! with, for product `id` (see [`catalogue_item`]):
//! - title `Product {id}`, link `/item/{id}`, image `/img/{id}.jpg`;
//! - price `9.99 + 1.25 × id` dollars, written `$X.YZ` (id 1 → `$11.24`, id 10 → `$22.49`);
//! - rating `1 + id % 5` (id 1 → `2`, id 4 → `5`, id 5 → `1`);
//! - tags: none when `id % 4 == 0`; otherwise `category-{id % 3}`, followed by `sale` when id
//!   is odd (id 1 → `category-1, sale`; id 2 → `category-2`; id 3 → `category-0, sale`).
//!
//! Noise around the products: a `<style>`, a `<script>` whose string contains product-like
//! markup, a commented-out product, a header `<nav>`, a sidebar with category links and an ad
//! link to `/item/999999` (not inside any `.product`), numbered page links
//! (`a.page-number`), `a.prev` from page 2 on, and a footer with a script. Every page except
//! the last has `<a class="next" href="/catalog?page=N+1">Next</a>`. A page number past the
//! last (or 0) answers 404 with no products and no next link.
//!
//! ## `/item/ID` — product detail
//! `div.product-detail[data-id=ID]` holding `h1.title` (`Product ID`), `.price`, `.stars`,
//! `img`, `p.description` (`Product ID is a fine product.`), `span.sku` (`SKU-000ID`, five
//! digits) and `ul.tags > li.tag`, with the same values as in the catalogue. Any id ≥ 1
//! exists; anything else is 404. `/img/NAME` answers a few bytes of `image/jpeg`.
//!
//! ## `/broken` — markup only an HTML5 parser reads
//! Unquoted attributes, unclosed `<span>`/`<p>`/`<a>`, mis-nested `<b>`, stray `</div>` and
//! `</span>`, a `&amp` without semicolon, tables nested in unclosed cells, and a product
//! inside `<table>` outside any cell (which the parser moves before the table). A browser
//! (and `scraper`) sees eight `div.product`, in this order, each with `h2 a` and `.price`:
//!
//! | `h2 a` text | `h2 a` href | `.price` |
//! |---|---|---|
//! | Broken One | /item/101 | $1.01 |
//! | Broken Two | /item/102 | $2.02 |
//! | Broken Three | /item/103 | $3.03 |
//! | Broken Four | /item/104 | $4.04 |
//! | Broken Five | /item/105 | $5.05 |
//! | Broken & Six | /item/106 | $6.06 |
//! | Broken Seven | /item/107 | $7.07 |
//! | Broken Eight | /item/108 | $8.08 |
//!
//! Products 101 and 102 also have one `.tag` each (`alpha`, `beta`); the others have none.
//!
//! ## `/charset/…` — legacy encodings (bytes really encoded with `encoding_rs`)
//! Three `div.product` with `h2 a` (name) and `.price`:
//! - `/charset/cp1251-header`: windows-1251, declared only in `Content-Type`
//!   (`text/html; charset=windows-1251`); title `Каталог`; products Чайник $10.50 (/item/201),
//!   Самовар $99.00 (/item/202), Матрёшка $15.25 (/item/203).
//! - `/charset/cp1251-meta`: the same bytes, `Content-Type: text/html`, declared only by
//!   `<meta charset="windows-1251">`.
//! - `/charset/sjis`: Shift_JIS, declared by
//!   `<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">`; title
//!   `カタログ`; products 緑茶 $5.00 (/item/301), 急須 $25.00 (/item/302), 抹茶 $7.50 (/item/303).
//!
//! ## Redirects
//! - `/redirect/chain/N`: 302 to `/redirect/chain/N-1`; `/redirect/chain/0` 302 to
//!   `/catalog?page=1` (so N+1 redirects in all).
//! - `/redirect/loop`: 302 to itself, forever.
//! - `/redirect/to?url=ENCODED`: 302 to any URL (for redirects into refused addresses).
//!
//! ## Status, failures and slowness
//! - `/status/CODE`: answers CODE with a small HTML page; `?retry_after=V` adds `Retry-After: V`.
//! - `/flaky/TOKEN?fail=N` (N defaults to 1): the first N requests for TOKEN answer 500, later
//!   ones 200 with a small page.
//! - `/ratelimited/TOKEN?retry_after=S` (S defaults to 1): the first request for TOKEN
//!   answers 429 with `Retry-After: S` (with `&date=1`, an HTTP-date S seconds ahead);
//!   later ones 200.
//! - `/slow?ms=M` (default 1000): waits M ms, then answers.
//! - `/slow-body?ms=M` (default 1000): sends headers and `<p>start</p>`, stalls M ms, then
//!   sends the rest.
//! - `/concurrency-probe?ms=M` (default 200): holds the request M ms;
//!   [`FixtureSite::max_concurrent`] reports the most that were in flight at once.
//!
//! ## Size, encoding, headers
//! - `/big?mb=N`: N MiB of HTML, streamed (chunked, no `Content-Length`).
//! - `/big-declared?mb=N`: N MiB (capped at 256) with `Content-Length`.
//! - `/gzip`: a small page, gzip-encoded when the request accepts gzip; the text is
//!   [`GZIP_TEXT`].
//! - `/headers`: the request headers as a JSON object (lower-case names; repeated headers
//!   joined with `, `).
//! - `/bomb/ENCODING?mib=N` (ENCODING `gzip`, `deflate` or `br`): a decompression bomb, N MiB
//!   (default 10 GiB) of zeros served as `text/html` in a few KiB per GiB, streamed.
//! - `/drip?ms=M&n=N`: one byte every M ms (default 100), N bytes (default 1,000,000).
//! - `/huge-head?n=N&bytes=B`: N response headers (default 1) of B bytes (default 1 MiB).
//!
//! (The last three: see the `attacks` module.)
//!
//! ## robots.txt and private pages
//! - `/robots.txt`: [`FixtureOptions::robots_txt`], or `User-agent: *\nAllow: /` by default.
//! - `/private/ANY`: a small 200 page, so a `Disallow: /private/` can be tested.
//!
//! ## `/base/page` — `<base href="/base/sub/">`
//! Three `div.product` with `h2 a`, `img` and `.price`, and `a.next`. Resolved against the
//! base, the links are `/base/sub/one`, `/base/two`, `/base/sub/?page=3`; the images
//! `/base/sub/img/one.jpg`, `/img/two.jpg`, `http://cdn.example/three.jpg`; the next link
//! `/base/sub/next-page`. `/base/sub/ANY` answers 200.
//!
//! ## `/js/…` — pages rendered by JavaScript
//! `/js/catalog`, `/js/load-more`, `/js/scroll`, `/js/reach`, `/js/never-loads`, `/js/crash`: see the
//! `js_pages` module. For the browser guard: `/js/worker-reach`, `/ws/echo` (a WebSocket
//! echo), `/js/websocket`, `/js/third-party`, `/cors/headers`, `/js/headers.js`,
//! `/js/huge-dom`: see the `guard_pages` module. `/js/service-worker-reach`,
//! `/js/shared-worker-reach` (with their worker scripts and `/js/worker-import.js`),
//! `/js/service-worker-controls` and `/js/service-worker-registrations`: see the
//! `worker_pages` module.
//!
//! # Hostile pages
//! [`HostileSite`] serves pages built to exhaust a scraper (100,000-deep nesting, values that
//! explode under transforms, pages too wide for the record caps); see the `hostile` module.
//! Decompression bombs are on the fixture site (`/bomb/…`).
//!
//! # Fake fetcher
//! [`FakeFetcher`] implements the fetch crate's `Fetcher` from [`Script`]s per URL (status,
//! body, content type, delay on tokio's clock, an error of a given class, render snapshots)
//! and logs and counts every request, for engine tests without network or Chromium.
//!
//! # Proxy
//! [`start_http_proxy`] runs a forward proxy (absolute-URI requests and `CONNECT`) that only
//! relays to loopback addresses and records every request; [`dead_proxy_addr`] is a loopback
//! port where nothing listens. [`start_socks5_proxy`] runs a SOCKS5 proxy (no
//! authentication, CONNECT to loopback IP addresses only) that records every target.
//!
//! # OpenID provider
//! [`OidcProvider`] runs the certified `oidc-provider` npm package with Node on 127.0.0.1:0
//! (installed in `crates/testkit/oidc/` by `scripts/ensure-test-services`), with one client
//! and test accounts, and signs in through its login form without a browser; see the
//! `oidc_provider` module.
//!
//! # SMTP
//! [`SmtpSink`] is an SMTP server on 127.0.0.1:0 that keeps every message (envelope and
//! data) for tests of the mail the service sends; see the `smtp_sink` module.

mod attacks;
mod cut_proxy;
mod fake_fetcher;
mod guard_pages;
mod hostile;
mod js_pages;
mod lemon_squeezy;
mod oidc_provider;
mod pages;
mod proxy;
mod redis_server;
mod routes;
mod s3_server;
mod site;
mod smtp_sink;
mod socks_proxy;
mod worker_pages;

pub use cut_proxy::TcpCutProxy;
pub use fake_fetcher::{FakeFetcher, FakeRequest, RequestKind, Script, ScriptedPage};
pub use hostile::HostileSite;
pub use lemon_squeezy::{FakeLemonSqueezy, LsRequest};
pub use oidc_provider::{
    OidcProvider, OidcProviderOptions, OidcTestAccount, SignInRedirect, oidc_provider_dir,
};
pub use pages::{
    CYRILLIC_PRODUCTS, CatalogueItem, JAPANESE_PRODUCTS, catalogue_item, catalogue_page_items,
};
pub use proxy::{ProxiedRequest, ProxyServer, dead_proxy_addr, start_http_proxy};
pub use redis_server::{TestRedis, free_port};
pub use routes::GZIP_TEXT;
pub use s3_server::{TestS3, moto_server_binary};
pub use site::{FixtureOptions, FixtureSite};
pub use smtp_sink::{ReceivedMail, SMTP_WAIT, SmtpSink};
pub use socks_proxy::{Socks5Server, start_socks5_proxy};

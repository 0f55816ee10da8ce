//! The fixture pages parse into exactly the records the crate docs promise.

use scraper::{Html, Selector};
use selextract_testkit::{FixtureOptions, FixtureSite, catalogue_item};

use crate::http::get;

fn sel(css: &str) -> Selector {
    Selector::parse(css).unwrap()
}

fn text_of(element: scraper::ElementRef<'_>, css: &str) -> Option<String> {
    element
        .select(&sel(css))
        .next()
        .map(|e| e.text().collect::<String>().trim().to_owned())
}

fn attr_of(element: scraper::ElementRef<'_>, css: &str, attr: &str) -> Option<String> {
    element
        .select(&sel(css))
        .next()
        .and_then(|e| e.value().attr(attr))
        .map(str::to_owned)
}

#[test]
fn broken_page_yields_the_documented_products_in_a_browser_parser() {
    let site = FixtureSite::start_blocking();
    let response = get(site.addr(), "/broken");
    assert_eq!(response.status, 200);
    let document = Html::parse_document(&response.text());
    let records: Vec<(String, String, String)> = document
        .select(&sel("div.product"))
        .map(|p| {
            (
                text_of(p, "h2 a").unwrap(),
                attr_of(p, "h2 a", "href").unwrap(),
                text_of(p, ".price").unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("Broken One", 101),
        ("Broken Two", 102),
        ("Broken Three", 103),
        ("Broken Four", 104),
        ("Broken Five", 105),
        ("Broken & Six", 106),
        ("Broken Seven", 107),
        ("Broken Eight", 108),
    ]
    .iter()
    .map(|(title, id)| {
        (
            title.to_string(),
            format!("/item/{id}"),
            format!("${}.{:02}", id - 100, id - 100),
        )
    })
    .collect();
    assert_eq!(records, expected);
    let tags: Vec<Option<String>> = document
        .select(&sel("div.product"))
        .map(|p| text_of(p, ".tag"))
        .collect();
    assert_eq!(tags[0].as_deref(), Some("alpha"));
    assert_eq!(tags[1].as_deref(), Some("beta"));
    assert!(tags[2..].iter().all(Option::is_none), "{tags:?}");
}

#[test]
fn catalogue_pages_hold_the_documented_products_and_next_links() {
    let site = FixtureSite::start_blocking_with(FixtureOptions {
        catalogue_pages: 3,
        items_per_page: 4,
        ..Default::default()
    });
    let response = get(site.addr(), "/catalog?page=2");
    assert_eq!(response.status, 200);
    let document = Html::parse_document(&response.text());
    let products: Vec<_> = document.select(&sel("div.product")).collect();
    assert_eq!(products.len(), 4);
    for (product, id) in products.iter().zip(5..) {
        let item = catalogue_item(id);
        assert_eq!(text_of(*product, "h2 a").unwrap(), format!("Product {id}"));
        assert_eq!(
            attr_of(*product, "h2 a", "href").unwrap(),
            format!("/item/{id}")
        );
        assert_eq!(text_of(*product, ".price").unwrap(), item.price);
        assert_eq!(
            attr_of(*product, ".stars", "data-rating").unwrap(),
            (1 + id % 5).to_string()
        );
        assert_eq!(
            attr_of(*product, "img", "src").unwrap(),
            format!("/img/{id}.jpg")
        );
        let tags: Vec<String> = product
            .select(&sel(".tag"))
            .map(|t| t.text().collect())
            .collect();
        assert_eq!(tags, item.tags);
    }
    let next: Vec<_> = document
        .select(&sel("a.next"))
        .map(|a| a.value().attr("href").unwrap().to_owned())
        .collect();
    assert_eq!(next, vec!["/catalog?page=3".to_owned()]);

    let last = Html::parse_document(&get(site.addr(), "/catalog?page=3").text());
    assert_eq!(last.select(&sel("a.next")).count(), 0);
    assert_eq!(get(site.addr(), "/catalog?page=4").status, 404);
}

#[test]
fn catalogue_values_follow_the_documented_formulas() {
    let first = catalogue_item(1);
    assert_eq!(
        (first.price.as_str(), first.rating.as_str()),
        ("$11.24", "2")
    );
    assert_eq!(first.tags, vec!["category-1".to_owned(), "sale".to_owned()]);
    assert_eq!(catalogue_item(10).price, "$22.49");
    assert!(catalogue_item(4).tags.is_empty());
    assert_eq!(catalogue_item(2).tags, vec!["category-2".to_owned()]);
}

#[test]
fn charset_pages_are_really_encoded_in_their_declared_encodings() {
    let site = FixtureSite::start_blocking();
    let header = get(site.addr(), "/charset/cp1251-header");
    assert_eq!(
        header.header("content-type"),
        Some("text/html; charset=windows-1251")
    );
    assert!(
        std::str::from_utf8(&header.body).is_err(),
        "windows-1251 bytes are not UTF-8"
    );
    let (decoded, _, had_errors) = encoding_rs::WINDOWS_1251.decode(&header.body);
    assert!(!had_errors);
    assert!(decoded.contains("Матрёшка") && decoded.contains("Самовар"));

    let meta = get(site.addr(), "/charset/cp1251-meta");
    assert_eq!(meta.header("content-type"), Some("text/html"));
    assert!(meta.text().contains("<meta charset=\"windows-1251\">"));
    assert!(
        encoding_rs::WINDOWS_1251
            .decode(&meta.body)
            .0
            .contains("Чайник")
    );

    let sjis = get(site.addr(), "/charset/sjis");
    let (decoded, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&sjis.body);
    assert!(!had_errors);
    assert!(decoded.contains("緑茶") && decoded.contains("抹茶"));
    assert!(std::str::from_utf8(&sjis.body).is_err());
}

#[test]
fn hits_count_requests_per_path_ignoring_the_query() {
    let site = FixtureSite::start_blocking();
    get(site.addr(), "/catalog?page=1");
    get(site.addr(), "/catalog?page=2");
    get(site.addr(), "/item/3");
    assert_eq!(site.hits("/catalog"), 2);
    assert_eq!(site.hits("/item/3"), 1);
    assert_eq!(site.hits("/item"), 0);
    let log: Vec<String> = site
        .request_log()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(log, vec!["/catalog?page=1", "/catalog?page=2", "/item/3"]);
}

#[test]
fn flaky_pages_fail_the_requested_number_of_times_per_token() {
    let site = FixtureSite::start_blocking();
    let statuses: Vec<u16> = (0..4)
        .map(|_| get(site.addr(), "/flaky/a?fail=2").status)
        .collect();
    assert_eq!(statuses, vec![500, 500, 200, 200]);
    assert_eq!(
        get(site.addr(), "/flaky/b?fail=2").status,
        500,
        "tokens count separately"
    );
}

#[test]
fn rate_limited_page_sends_retry_after_once() {
    let site = FixtureSite::start_blocking();
    let first = get(site.addr(), "/ratelimited/t?retry_after=7");
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("7"));
    assert_eq!(get(site.addr(), "/ratelimited/t?retry_after=7").status, 200);
}

#[test]
fn redirect_chain_counts_down_to_the_catalogue() {
    let site = FixtureSite::start_blocking();
    let hop = get(site.addr(), "/redirect/chain/2");
    assert_eq!(
        (hop.status, hop.header("location")),
        (302, Some("/redirect/chain/1"))
    );
    let last = get(site.addr(), "/redirect/chain/0");
    assert_eq!(last.header("location"), Some("/catalog?page=1"));
    let to = get(
        site.addr(),
        "/redirect/to?url=http%3A%2F%2F127.0.0.1%3A1%2Fx",
    );
    assert_eq!(to.header("location"), Some("http://127.0.0.1:1/x"));
}

#[test]
fn big_routes_send_the_requested_size_with_and_without_length() {
    let site = FixtureSite::start_blocking();
    let streamed = get(site.addr(), "/big?mb=1");
    assert_eq!(streamed.header("content-length"), None);
    assert_eq!(streamed.body.len(), 1024 * 1024);
    let declared = get(site.addr(), "/big-declared?mb=1");
    assert_eq!(declared.header("content-length"), Some("1048576"));
    assert_eq!(declared.body.len(), 1024 * 1024);
}

#[test]
fn robots_txt_serves_the_configured_body() {
    let site = FixtureSite::start_blocking_with(FixtureOptions {
        robots_txt: Some("User-agent: *\nDisallow: /private/\n".to_owned()),
        ..Default::default()
    });
    assert_eq!(
        get(site.addr(), "/robots.txt").text(),
        "User-agent: *\nDisallow: /private/\n"
    );
    assert_eq!(get(site.addr(), "/private/page").status, 200);
    let default_site = FixtureSite::start_blocking();
    assert!(
        get(default_site.addr(), "/robots.txt")
            .text()
            .contains("Allow: /")
    );
}

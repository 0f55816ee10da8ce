//! HTML documents served by the fixture site, with deterministic content that tests assert.

use std::fmt::Write as _;

/// The values of one catalogue product, computed from its id (see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueItem {
    pub id: usize,
    /// `Product {id}`.
    pub title: String,
    /// `/item/{id}` (relative to the site).
    pub path: String,
    /// `$X.YZ` where the value is 9.99 + 1.25 × id.
    pub price: String,
    /// The price as a number (9.99 + 1.25 × id).
    pub price_value: f64,
    /// `1 + id % 5`, as written in `data-rating`.
    pub rating: String,
    /// `/img/{id}.jpg`.
    pub image_path: String,
    /// No tags when `id % 4 == 0`; otherwise `category-{id % 3}`, then `sale` when id is odd.
    pub tags: Vec<String>,
}

/// Computes the product with the given id; the catalogue and the detail pages both use it.
pub fn catalogue_item(id: usize) -> CatalogueItem {
    let cents = 999 + 125 * id;
    let mut tags = Vec::new();
    if !id.is_multiple_of(4) {
        tags.push(format!("category-{}", id % 3));
        if id % 2 == 1 {
            tags.push("sale".to_owned());
        }
    }
    CatalogueItem {
        id,
        title: format!("Product {id}"),
        path: format!("/item/{id}"),
        price: format!("${}.{:02}", cents / 100, cents % 100),
        price_value: cents as f64 / 100.0,
        rating: (1 + id % 5).to_string(),
        image_path: format!("/img/{id}.jpg"),
        tags,
    }
}

/// The products on catalogue page `page` (1-based); empty past the last page.
pub fn catalogue_page_items(page: usize, pages: usize, per_page: usize) -> Vec<CatalogueItem> {
    if page == 0 || page > pages {
        return Vec::new();
    }
    let first = (page - 1) * per_page + 1;
    (first..first + per_page).map(catalogue_item).collect()
}

/// Navigation, styles and scripts that surround the content of every catalogue-like page, so
/// extraction is tested against the kind of noise real shops have.
fn page_head(title: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  .product {{ border: 1px solid #ddd; padding: 8px; }}
  .price::before {{ content: ""; }}
</style>
<script>
  // A template string that looks like markup: a parser must treat it as script text.
  var template = '<div class="product"><h2><a href="/item/0">Fake</a></h2><span class="price">$0.00</span></div>';
  window.analytics = {{ page: "{title}" }};
</script>
</head>
<body>
<header class="site-header">
  <a class="logo" href="/">Fixture Shop</a>
  <nav><ul><li><a href="/">Home</a></li><li><a href="/catalog?page=1">Catalogue</a></li><li><a href="/about">About</a></li></ul></nav>
</header>
<!-- <div class="product"><h2><a href="/item/0">Commented out</a></h2></div> -->
"#
    )
}

const PAGE_FOOT: &str = r#"<footer class="site-footer">
  <p>&copy; 2024 Fixture Shop &middot; <a href="/privacy">Privacy</a></p>
  <script>document.querySelectorAll('.product').forEach(function (p) { p.dataset.seen = "1"; });</script>
</footer>
</body>
</html>
"#;

/// Renders `/catalog?page={page}`.
pub fn catalogue_page(page: usize, pages: usize, per_page: usize) -> String {
    let items = catalogue_page_items(page, pages, per_page);
    let mut html = page_head(&format!("Catalogue, page {page}"));
    html.push_str(
        r#"<aside class="sidebar"><h3>Categories</h3><ul><li><a href="/catalog?page=1&amp;cat=0">Category 0</a></li><li><a href="/catalog?page=1&amp;cat=1">Category 1</a></li></ul>
<div class="ad">Sponsored: <a href="/item/999999">Not a listing</a></div></aside>
<main id="listing">
"#,
    );
    let _ = writeln!(
        html,
        "<h1>Catalogue</h1>\n<p class=\"summary\">Page {page} of {pages}</p>"
    );
    for item in &items {
        html.push_str(&product_div(item));
    }
    html.push_str("<div class=\"pagination\">");
    if page > 1 && page <= pages {
        let _ = write!(
            html,
            r#"<a class="prev" href="/catalog?page={}">Previous</a> "#,
            page - 1
        );
    }
    for n in 1..=pages {
        let _ = write!(
            html,
            r#"<a class="page-number" href="/catalog?page={n}">{n}</a> "#
        );
    }
    if page < pages && page >= 1 {
        let _ = write!(
            html,
            r#"<a class="next" href="/catalog?page={}">Next</a>"#,
            page + 1
        );
    }
    html.push_str("</div>\n</main>\n");
    html.push_str(PAGE_FOOT);
    html
}

fn product_div(item: &CatalogueItem) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<div class="product" data-id="{id}">
  <h2><a href="{path}">{title}</a></h2>
  <span class="price">{price}</span>
  <span class="stars" data-rating="{rating}"></span>
  <img src="{image}" alt="{title}">
"#,
        id = item.id,
        path = item.path,
        title = item.title,
        price = item.price,
        rating = item.rating,
        image = item.image_path,
    );
    for tag in &item.tags {
        let _ = writeln!(html, r#"  <span class="tag">{tag}</span>"#);
    }
    html.push_str(
        "  <button class=\"add-to-cart\" onclick=\"return false\">Add to cart</button>\n</div>\n",
    );
    html
}

/// Renders `/item/{id}`.
pub fn item_page(id: usize) -> String {
    let item = catalogue_item(id);
    let mut html = page_head(&item.title);
    let _ = write!(
        html,
        r#"<main>
<div class="product-detail" data-id="{id}">
  <h1 class="title">{title}</h1>
  <span class="price">{price}</span>
  <span class="stars" data-rating="{rating}"></span>
  <img src="{image}" alt="{title}">
  <p class="description">{title} is a fine product.</p>
  <span class="sku">SKU-{id:05}</span>
  <ul class="tags">
"#,
        title = item.title,
        price = item.price,
        rating = item.rating,
        image = item.image_path,
    );
    for tag in &item.tags {
        let _ = writeln!(html, r#"    <li class="tag">{tag}</li>"#);
    }
    html.push_str("  </ul>\n</div>\n</main>\n");
    html.push_str(PAGE_FOOT);
    html
}

/// `/broken`: markup that only a forgiving (HTML5) parser reads; the expected records are in
/// the crate docs and checked by this crate's tests with `scraper`.
pub const BROKEN_PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Broken shop</title>
<body>
<div class=nav><a href=/>Home</a> | <a href=/catalog?page=1>Catalogue</a></div>
</div></div>
<div id=listing>
<div class=product><h2><a href=/item/101>Broken One</a></h2><span class=price>$1.01</span><img src=/img/101.jpg alt=Broken One><span class=tag>alpha</span></div>
<div class="product"><h2><a href='/item/102'>Broken Two</a></h2><span class="price">$2.02</span><span class=tag>beta</div>
<div class=product><h2><a href="/item/103">Broken <b>Three</a></b></h2><span class=price>$3.03</span></div>
</div></div></span>
<table><tr><td><div class="product"><h2><a href="/item/104">Broken Four</a></h2><span class="price">$4.04</span></div><td>cell<tr><td><table><tr><td><div class=product><h2><a href=/item/105>Broken Five</a></h2><span class=price>$5.05</span></div></table></table>
<div class=product><h2><a href=/item/106>Broken &amp Six</a></h2><span class=price>$6.06</span><p>unclosed paragraph</div>
<p><div class=product><h2><a href=/item/107>Broken Seven</h2><span class=price>$7.07</span></div>
<table><div class=product><h2><a href=/item/108>Broken Eight</a></h2><span class=price>$8.08</span></div><tr><td>foster parent</td></tr></table>
</body></html>
"#;

/// Product names and prices of the `/charset/*` pages written in Cyrillic.
pub const CYRILLIC_PRODUCTS: [(&str, &str); 3] = [
    ("Чайник", "$10.50"),
    ("Самовар", "$99.00"),
    ("Матрёшка", "$15.25"),
];

/// Product names and prices of `/charset/sjis`.
pub const JAPANESE_PRODUCTS: [(&str, &str); 3] =
    [("緑茶", "$5.00"), ("急須", "$25.00"), ("抹茶", "$7.50")];

/// Renders a small catalogue with the given `<head>` charset declaration (unencoded text).
pub fn charset_page(
    head_declaration: &str,
    title: &str,
    products: &[(&str, &str)],
    first_id: usize,
) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n{head_declaration}\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for (offset, (name, price)) in products.iter().enumerate() {
        let id = first_id + offset;
        let _ = writeln!(
            html,
            "<div class=\"product\"><h2><a href=\"/item/{id}\">{name}</a></h2><span class=\"price\">{price}</span></div>"
        );
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// `/base/page`: relative links that must be resolved against `<base href="/base/sub/">`.
pub const BASE_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head><base href="/base/sub/"><title>Base href</title></head>
<body>
<div class="product"><h2><a href="one">One</a></h2><img src="img/one.jpg"><span class="price">$1.00</span></div>
<div class="product"><h2><a href="../two">Two</a></h2><img src="/img/two.jpg"><span class="price">$2.00</span></div>
<div class="product"><h2><a href="?page=3">Three</a></h2><img src="//cdn.example/three.jpg"><span class="price">$3.00</span></div>
<a class="next" href="next-page">Next</a>
</body>
</html>
"#;

/// A small, complete page for routes whose content does not matter (`/flaky`, `/private/…`).
pub fn simple_page(title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1><p class=\"text\">{text}</p></body></html>\n"
    )
}

//! Attacks on the real `selextract serve` process with ordinary API keys (issue 9): deep
//! selectors, exploding transforms, deep and huge pages, decompression bombs, enormous delays,
//! floods of event streams and header leaks through redirects. After each attack the process
//! still answers `/health` and another user's run completes with every record.

use std::path::Path;
use std::time::Duration;

use selextract_testkit::{FixtureSite, HostileSite};
use serde_json::{Value, json};

use crate::support::{Api, Server, run_ok, start_server};

/// A second user (`email`) with a fresh key, created through the CLI next to the running server.
fn another_user(data_dir: &Path, email: &str) -> String {
    run_ok(data_dir, &["user", "create", "--email", email]);
    run_ok(data_dir, &["key", "create", "--email", email])
        .trim()
        .to_owned()
}

/// A fixture site, a fresh `serve` on it, its admin (the attacker) and a second user (the
/// bystander whose work must not suffer).
/// Destructure with named bindings only (`server: _server`, `_data`): a field left to `..`
/// or bound to `_` is dropped at once, which would stop the server or delete its data.
struct Scene {
    site: FixtureSite,
    server: Server,
    attacker: Api,
    bystander: Api,
    _data: tempfile::TempDir,
}

impl Scene {
    async fn start() -> Scene {
        let site = FixtureSite::start().await;
        let data = tempfile::tempdir().expect("tempdir");
        let server = start_server(data.path(), &["--allow-private-networks"]);
        let attacker = admin(&server);
        let bystander = Api::new(&server.base, &another_user(data.path(), "bob@example.com"));
        Scene {
            site,
            server,
            attacker,
            bystander,
            _data: data,
        }
    }
}

fn admin(server: &Server) -> Api {
    Api::new(
        &server.base,
        server.key.as_deref().expect("the first start prints a key"),
    )
}

/// The process is alive and another user's ordinary run on the catalogue completes with all
/// 50 records.
async fn service_still_works(bystander: &Api, site: &FixtureSite) {
    let (status, body) = bystander.get("/health").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, task) = bystander
        .post_json(
            "/api/v1/tasks",
            &json!({
                "name": "bystander",
                "start_urls": [site.url("/catalog?page=1")],
                "item_selector": "div.product",
                "fields": [{"name": "title", "selector": "h2 a"}],
                "pagination": {"next_selector": "a.next", "max_pages": 10}
            }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let run_id = run_id_of(&task);
    let run = bystander
        .wait_terminal(&run_id, Duration::from_secs(120))
        .await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(bystander.all_records(&run_id).await.len(), 50);
}

fn error_fields(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter_map(|d| d["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn run_id_of(task: &Value) -> String {
    task["latest_run"]["id"]
        .as_str()
        .expect("the task has its first run")
        .to_owned()
}

/// The `class` of every page failure in a run's log.
async fn failure_classes(api: &Api, run_id: &str) -> Vec<String> {
    let logs = api
        .get_json(&format!("/api/v1/runs/{run_id}/logs?page_size=100"))
        .await;
    logs["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|line| line["fields"]["class"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_selectors_are_refused_with_their_path_and_the_server_keeps_serving() {
    let Scene {
        site,
        server: _server,
        attacker,
        bystander,
        _data,
    } = Scene::start().await;

    let deep_xpath = format!("{}//a{}", "(".repeat(2_000), ")".repeat(2_000));
    let deep_css = format!("{}a{}", ":not(".repeat(2_000), ")".repeat(2_000));
    let attacks = [
        json!({"name": "title", "selector": deep_xpath, "selector_type": "xpath"}),
        json!({"name": "title", "selector": deep_css}),
        json!({"name": "title", "selector": format!("//a[{}1{}]", "[".repeat(5_000), "]".repeat(5_000)), "selector_type": "xpath"}),
        json!({"name": "title", "selector": "a".repeat(1_000_000)}),
    ];
    for field in attacks {
        for route in ["/api/v1/tasks", "/api/v1/preview"] {
            let (status, body) = attacker
                .post_json(
                    route,
                    &json!({
                        "name": "deep",
                        "start_urls": [site.url("/catalog?page=1")],
                        "fields": [field.clone()]
                    }),
                )
                .await;
            assert_eq!(status, 422, "{route}: {body}");
            assert_eq!(
                error_fields(&body),
                vec!["fields[0].selector".to_owned()],
                "{route}: {body}"
            );
        }
    }
    service_still_works(&bystander, &site).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploding_transforms_are_refused_or_fail_their_page_alone() {
    let Scene {
        site,
        server,
        attacker,
        bystander,
        _data,
    } = Scene::start().await;
    let hostile = HostileSite::start().await;
    let doubling = |times: usize| -> Value {
        json!({
            "name": "doubled",
            "start_urls": [hostile.url("/aaaa")],
            "fields": [{
                "name": "title",
                "selector": ".title",
                "transform": vec![json!({"replace": ["a", "aa"]}); times]
            }]
        })
    };

    // 40 doublings ask for terabytes: more steps than a field may have.
    let (status, body) = attacker.post_json("/api/v1/preview", &doubling(40)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), vec!["fields[0].transform".to_owned()]);

    // 20 doublings of four `a` are 4 MiB: within the step count, past the value cap. The
    // page fails alone with a class that says why.
    let (status, body) = attacker.post_json("/api/v1/preview", &doubling(20)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["page"]["outcome"], "records_too_large", "{body}");
    assert_eq!(body["records"], json!([]), "{body}");

    // In a run, the exploding page fails and the ordinary page next to it still counts.
    let mut spec = doubling(20);
    spec["start_urls"] = json!([hostile.url("/aaaa"), hostile.url("/ok?n=1")]);
    spec["fields"][0]["required"] = json!(false);
    let (status, task) = attacker.post_json("/api/v1/tasks", &spec).await;
    assert_eq!(status, 201, "{task}");
    let run_id = run_id_of(&task);
    let run = attacker
        .wait_terminal(&run_id, Duration::from_secs(60))
        .await;
    assert_eq!(run["state"], "partial", "{run}");
    assert_eq!(
        failure_classes(&attacker, &run_id).await,
        vec!["records_too_large".to_owned()]
    );
    let records = attacker.all_records(&run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["title"], "ok 1");
    assert!(
        server.proc.peak_rss_bytes() < 512 * 1024 * 1024,
        "serve peaked at {} MB",
        server.proc.peak_rss_bytes() / (1024 * 1024)
    );
    service_still_works(&bystander, &site).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_huge_and_bomb_pages_fail_alone_or_extract() {
    let Scene {
        site,
        server: _server,
        attacker,
        bystander,
        _data,
    } = Scene::start().await;
    let hostile = HostileSite::start().await;

    let (status, task) = attacker
        .post_json(
            "/api/v1/tasks",
            &json!({
                "name": "hostile pages",
                "start_urls": [
                    hostile.url("/deep?n=100000"),
                    // As deep as the body's inner HTML stays within max_value_bytes.
                    hostile.url("/deep-spans?n=70000"),
                    site.url("/bomb/gzip"),
                    hostile.url("/wide?n=1&bytes=2000000"),
                    hostile.url("/wide?n=40&bytes=1000000"),
                    site.url("/big?mb=64"),
                    hostile.url("/ok?n=2")
                ],
                "fields": [
                    {"name": "texts", "selector": "p.bottom, p.after, .title, .item", "multiple": true},
                    {"name": "deepest", "selector": "//p[@class='bottom']", "selector_type": "xpath", "required": false},
                    {"name": "html", "selector": "body", "type": "html", "required": false}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let run_id = run_id_of(&task);
    let run = attacker
        .wait_terminal(&run_id, Duration::from_secs(180))
        .await;
    assert_eq!(run["state"], "partial", "{run}");
    let mut classes = failure_classes(&attacker, &run_id).await;
    classes.sort();
    assert_eq!(
        classes,
        vec![
            "extraction_too_costly".to_owned(),
            "records_too_large".to_owned(),
            "too_large".to_owned(),
            "too_large".to_owned(),
            "too_large".to_owned()
        ],
        "100,000 nested divs would make the parser quadratic and are refused unparsed; the \
         bomb, the 64 MiB page and the 40 MB wide page are refused while downloading; the \
         one-item wide page's record is over the caps"
    );
    let records = attacker.all_records(&run_id).await;
    let texts: Vec<Value> = records.iter().map(|r| r["texts"].clone()).collect();
    assert!(
        texts.contains(&json!(["deep", "after"])),
        "the page of 70,000 nested spans extracts: {texts:?}"
    );
    assert_eq!(
        records.len(),
        2,
        "only the spans and the ok page have records: {texts:?}"
    );
    assert!(texts.contains(&json!(["ok 2"])), "{texts:?}");
    service_still_works(&bystander, &site).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_delay_is_refused_and_a_long_one_delays_no_other_user() {
    let Scene {
        site,
        server: _server,
        attacker,
        bystander,
        _data,
    } = Scene::start().await;
    let slow_task = |delay_ms: u64| {
        json!({
            "name": "slow",
            "start_urls": [site.url("/item/1"), site.url("/item/2"), site.url("/item/3")],
            "fields": [{"name": "title", "selector": "h1.title"}],
            "rate_limit": {"delay_ms": delay_ms, "concurrency_per_domain": 1}
        })
    };

    let (status, body) = attacker
        .post_json("/api/v1/tasks", &slow_task(1_000_000_000))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), vec!["rate_limit.delay_ms".to_owned()]);

    // The longest delay allowed on the fixture's host: the attacker's run fetches one page,
    // then waits a minute per page. Bob's run on the same host does not wait behind it.
    let (status, task) = attacker
        .post_json("/api/v1/tasks", &slow_task(60_000))
        .await;
    assert_eq!(status, 201, "{task}");
    let slow_run = run_id_of(&task);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = attacker.get_json(&format!("/api/v1/runs/{slow_run}")).await;
        if run["progress"]["pages_done"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service_still_works(&bystander, &site).await;
    let run = attacker.get_json(&format!("/api/v1/runs/{slow_run}")).await;
    assert_eq!(
        run["state"], "running",
        "bob finished while the attacker's run still waits for its second page: {run}"
    );
    assert!(
        run["progress"]["pages_done"].as_u64().unwrap_or(0) < 3,
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_headers_do_not_follow_a_redirect_to_another_origin() {
    let home = FixtureSite::start().await;
    let elsewhere = FixtureSite::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &["--allow-private-networks"]);
    let attacker = admin(&server);
    let away = format!(
        "/redirect/to?url={}",
        url_encode(&elsewhere.url("/headers"))
    );
    let (status, task) = attacker
        .post_json(
            "/api/v1/tasks",
            &json!({
                "name": "leak",
                "start_urls": [home.url("/headers"), home.url(&away)],
                "fields": [{"name": "echo", "selector": "body"}],
                "headers": {"X-API-Key": "secret-key-123", "Authorization": "Bearer secret-token-456"},
                "cookies": {"session": "secret-cookie-789"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let run_id = run_id_of(&task);
    let run = attacker
        .wait_terminal(&run_id, Duration::from_secs(60))
        .await;
    assert_eq!(run["state"], "completed", "{run}");
    let records = attacker.all_records(&run_id).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let same_origin = records
        .iter()
        .find(|r| {
            r["echo"]
                .as_str()
                .is_some_and(|e| e.contains("secret-key-123"))
        })
        .expect("the task's own origin receives its headers");
    for secret in ["secret-token-456", "secret-cookie-789"] {
        assert!(
            same_origin["echo"]
                .as_str()
                .unwrap_or_default()
                .contains(secret)
        );
    }
    let other_origin: Vec<&Value> = records
        .iter()
        .filter(|r| {
            !r["echo"]
                .as_str()
                .unwrap_or_default()
                .contains("secret-key-123")
        })
        .collect();
    assert_eq!(other_origin.len(), 1, "{records:?}");
    let echoed = other_origin[0]["echo"].as_str().unwrap_or_default();
    for secret in [
        "secret-key-123",
        "secret-token-456",
        "secret-cookie-789",
        "x-api-key",
    ] {
        assert!(
            !echoed.contains(secret),
            "{secret} leaked to another origin: {echoed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_event_streams_is_capped_and_the_server_keeps_serving() {
    let Scene {
        site,
        server: _server,
        attacker,
        bystander,
        _data,
    } = Scene::start().await;
    let (status, task) = attacker
        .post_json(
            "/api/v1/tasks",
            &json!({
                "name": "watched",
                "start_urls": [site.url("/item/1")],
                "fields": [{"name": "title", "selector": "h1.title"}],
                "start": false
            }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let url = format!("{}/api/v1/tasks/{task_id}/events", attacker.base);

    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..200 {
        let response = attacker
            .client
            .get(&url)
            .bearer_auth(&attacker.key)
            .send()
            .await
            .expect("events request");
        match response.status().as_u16() {
            200 => open.push(response),
            other => {
                refused = Some((other, response.headers().contains_key("retry-after")));
                break;
            }
        }
    }
    let (status, has_retry_after) = refused.expect("a cap refuses some of 200 streams");
    assert_eq!(status, 429);
    assert!(has_retry_after);
    assert!(
        !open.is_empty() && open.len() < 200,
        "{} streams open",
        open.len()
    );

    // Closing one stream frees its slot.
    open.pop();
    let mut reopened = None;
    for _ in 0..50 {
        let response = attacker
            .client
            .get(&url)
            .bearer_auth(&attacker.key)
            .send()
            .await
            .expect("events request");
        if response.status().as_u16() == 200 {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream's slot is released");
    service_still_works(&bystander, &site).await;
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

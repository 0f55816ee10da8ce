//! `selextract scrape`: run one task locally and stream its records to stdout or a file.
//!
//! Exit codes: 0 completed, 1 bad input or a fatal error, 2 partial (some pages failed),
//! 3 failed (no page succeeded), 130 stopped by Ctrl-C (what was written is kept and the
//! output is closed properly).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use selextract_engine::{EngineEvent, EngineOptions, Summary, Verdict};
use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_results::{ExportFormat, RecordWriter, record_writer};
use selextract_spec::{Limits, ValidatedSpec, parse_task_input};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct ScrapeArgs {
    /// The task file. Omit it to describe a task with --url and --field.
    pub task: Option<PathBuf>,
    /// Write records to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format; inferred from --output's extension, else the task's output_format.
    #[arg(long, value_parser = ["json", "jsonl", "csv", "xlsx"])]
    pub format: Option<String>,
    /// Pages in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Allow fetching loopback, private and link-local addresses (off by default).
    #[arg(long)]
    pub allow_private_networks: bool,
    /// A proxy for tasks with `proxy.enabled` (repeat for a pool): http://, https://, socks5://.
    #[arg(long = "proxy")]
    pub proxies: Vec<String>,
    /// Add `_url` (the page) and `_position` (index on the page) to every record.
    #[arg(long)]
    pub meta: bool,
    /// Quick form: a start URL (repeatable).
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// Quick form: CSS selector of the items (one record per item).
    #[arg(long)]
    pub item: Option<String>,
    /// Quick form: `name=SELECTOR` (text), `name=SELECTOR@attr` (attribute; `@href` is an
    /// absolute link and `@src` an absolute image URL). Repeatable; fields are optional.
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Quick form: CSS selector of the next-page link.
    #[arg(long)]
    pub next: Option<String>,
    /// Quick form: pages per start URL (with --next).
    #[arg(long, default_value_t = 10)]
    pub max_pages: u32,
}

pub async fn run(
    common: &crate::platform::CommonArgs,
    args: ScrapeArgs,
) -> anyhow::Result<ExitCode> {
    let (settings, _) = crate::config::load(common.config.as_deref())?;
    let spec = match load_spec(&args, &settings.limits)? {
        Ok(spec) => Arc::new(spec),
        Err(errors) => {
            eprintln!("the task is not valid:");
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let format = choose_format(&args, &spec)?;
    let columns = output_columns(&spec, args.meta);
    let mut writer = open_writer(&args, format, &columns)?;

    let fetcher = build_fetcher(&args)?;
    let browser = start_browser_if_needed(&settings, &args, &spec).await?;
    let mut options = EngineOptions::new(fetcher);
    options.browser = browser.as_ref().map(|(b, _)| b.fetcher.clone());
    options.concurrency = args.concurrency.max(1);
    let cancel = CancellationToken::new();
    let mut events = selextract_engine::start(spec.clone(), options, cancel.clone())?;
    let interrupted = watch_ctrl_c(cancel.clone());

    let bar = progress_bar();
    let started = Instant::now();
    let mut summary: Option<Summary> = None;
    while let Some(event) = events.recv().await {
        match event {
            EngineEvent::Page(page) => {
                for (position, mut record) in page.records.into_iter().enumerate() {
                    if args.meta {
                        record.insert("_url".to_owned(), json!(page.url.as_str()));
                        record.insert("_position".to_owned(), json!(position));
                    }
                    writer.write_record(&record).context("writing a record")?;
                }
                writer.flush().context("flushing output")?;
                if !page.outcome.is_ok() {
                    let line = format!(
                        "page {} {}: {}",
                        page.key,
                        page.url,
                        describe(&page.outcome)
                    );
                    match &bar {
                        Some(bar) => bar.println(line),
                        None => eprintln!("{line}"),
                    }
                }
            }
            EngineEvent::Progress(progress) => {
                if let Some(bar) = &bar {
                    bar.set_length(progress.pages_known);
                    bar.set_position(progress.pages_done);
                    let rate =
                        progress.pages_done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    bar.set_message(format!(
                        "{} records, {} errors, {rate:.0} pages/s",
                        progress.records, progress.pages_failed
                    ));
                }
            }
            EngineEvent::Log(line) => {
                tracing::debug!(level = line.level.as_str(), "{}", line.message);
            }
            EngineEvent::Done(done) => summary = Some(done),
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some((browser, _runtime_dir)) = &browser {
        browser.shutdown().await;
    }
    writer.finish().context("closing the output")?;
    let Some(summary) = summary else {
        bail!("the engine stopped without a summary");
    };
    print_summary(&summary, started.elapsed());
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(ExitCode::from(130));
    }
    Ok(match summary.verdict() {
        Verdict::Completed => ExitCode::SUCCESS,
        Verdict::Partial(_) => ExitCode::from(2),
        Verdict::Failed(_) | Verdict::Cancelled => ExitCode::from(3),
    })
}

fn describe(outcome: &selextract_engine::PageOutcome) -> String {
    match outcome {
        selextract_engine::PageOutcome::Ok => "ok".to_owned(),
        selextract_engine::PageOutcome::HttpStatus { status } => format!("HTTP {status}"),
        selextract_engine::PageOutcome::Error { class, message } => format!("{class}: {message}"),
    }
}

fn load_spec(
    args: &ScrapeArgs,
    limits: &Limits,
) -> anyhow::Result<Result<ValidatedSpec, selextract_spec::ValidationErrors>> {
    match (&args.task, args.urls.is_empty()) {
        (Some(_), false) => bail!("give either a task file or --url, not both"),
        (None, true) => bail!("give a task file, or --url with at least one --field"),
        (Some(path), true) => Ok(super::load_task_file(path, limits)?.map(|input| input.spec)),
        (None, false) => {
            let value = quick_spec(args)?;
            Ok(parse_task_input(&value, limits).map(|input| input.spec))
        }
    }
}

/// Build a canonical task from the quick-form flags.
fn quick_spec(args: &ScrapeArgs) -> anyhow::Result<Value> {
    if args.fields.is_empty() {
        bail!("--url needs at least one --field name=SELECTOR");
    }
    let mut fields = Vec::new();
    for raw in &args.fields {
        let Some((name, selector)) = raw.split_once('=') else {
            bail!("--field {raw:?}: expected name=SELECTOR");
        };
        let mut field = json!({"name": name.trim(), "required": false});
        match selector.rsplit_once('@') {
            Some((css, attr)) if !attr.is_empty() && !attr.contains([' ', ']', '"', '\'']) => {
                field["selector"] = json!(css.trim());
                match attr {
                    "href" => field["type"] = json!("link"),
                    "src" => field["type"] = json!("image"),
                    _ => {
                        field["type"] = json!("attribute");
                        field["attribute"] = json!(attr);
                    }
                }
            }
            _ => field["selector"] = json!(selector.trim()),
        }
        fields.push(field);
    }
    let mut spec = json!({"name": "command line", "start_urls": args.urls, "fields": fields});
    if let Some(item) = &args.item {
        spec["item_selector"] = json!(item);
    }
    if let Some(next) = &args.next {
        spec["pagination"] = json!({"next_selector": next, "max_pages": args.max_pages});
    }
    Ok(spec)
}

fn choose_format(args: &ScrapeArgs, spec: &ValidatedSpec) -> anyhow::Result<ExportFormat> {
    if let Some(format) = &args.format {
        return format
            .parse::<ExportFormat>()
            .map_err(|e| anyhow::anyhow!("--format: {e}"));
    }
    if let Some(path) = &args.output {
        if let Some(format) = ExportFormat::from_path(path) {
            return Ok(format);
        }
    }
    spec.spec()
        .output_format
        .as_str()
        .parse::<ExportFormat>()
        .map_err(|e| anyhow::anyhow!("output_format: {e}"))
}

fn output_columns(spec: &ValidatedSpec, meta: bool) -> Vec<String> {
    let mut columns: Vec<String> = spec.spec().fields.iter().map(|f| f.name.clone()).collect();
    if meta {
        columns.push("_url".to_owned());
        columns.push("_position".to_owned());
    }
    columns
}

fn open_writer(
    args: &ScrapeArgs,
    format: ExportFormat,
    columns: &[String],
) -> anyhow::Result<Box<dyn RecordWriter>> {
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => {
            if format == ExportFormat::Xlsx && std::io::stdout().is_terminal() {
                bail!("refusing to write XLSX to a terminal; use -o FILE.xlsx");
            }
            Box::new(std::io::BufWriter::new(std::io::stdout()))
        }
    };
    record_writer(format, out, columns).context("opening the output")
}

/// Browser and auto tasks get a Chromium pool in a private runtime directory (removed when
/// the returned guard drops); a browser task without Chromium is refused with the fix.
async fn start_browser_if_needed(
    settings: &crate::config::Settings,
    args: &ScrapeArgs,
    spec: &ValidatedSpec,
) -> anyhow::Result<Option<(crate::browser::Browser, tempfile::TempDir)>> {
    let mode = spec.spec().mode;
    if mode == selextract_spec::Mode::Http {
        return Ok(None);
    }
    let runtime_dir = tempfile::Builder::new()
        .prefix("selextract-browsers-")
        .tempdir()
        .context("creating the browser runtime directory")?;
    let browser =
        crate::browser::start_browser(settings, args.allow_private_networks, runtime_dir.path())
            .await?;
    match browser {
        Some(browser) => Ok(Some((browser, runtime_dir))),
        None if mode == selextract_spec::Mode::Browser => bail!(
            "this task has \"mode\": \"browser\" and no Chromium was found; install it with \
             `apt-get install chromium-headless-shell` (scripts/ensure-test-services does) or set \
             SELEXTRACT__BROWSER__EXECUTABLE"
        ),
        None => {
            eprintln!("note: no Chromium found; auto mode stays on plain HTTP");
            Ok(None)
        }
    }
}

fn build_fetcher(args: &ScrapeArgs) -> anyhow::Result<Arc<HttpFetcher>> {
    let mut config = HttpFetcherConfig {
        allow_private_networks: args.allow_private_networks,
        ..HttpFetcherConfig::default()
    };
    for proxy in &args.proxies {
        config.proxies.push(
            proxy
                .parse()
                // Masked: a proxy URL may carry a password, and the terminal may be logged.
                .with_context(|| {
                    format!(
                        "--proxy {:?} is not a URL",
                        selextract_config::mask_url(proxy)
                    )
                })?,
        );
    }
    Ok(Arc::new(
        HttpFetcher::new(config).context("building the HTTP client")?,
    ))
}

/// Cancel the run on the first Ctrl-C; the second one exits at once.
fn watch_ctrl_c(cancel: CancellationToken) -> Arc<std::sync::atomic::AtomicBool> {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "interrupted: finishing pages in flight and closing the output (Ctrl-C again to quit)"
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    flag
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} pages, {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn print_summary(summary: &Summary, elapsed: Duration) {
    let p = &summary.progress;
    let secs = elapsed.as_secs_f64().max(1e-3);
    let verdict = summary.verdict();
    let (state, reason) = (verdict.state_str(), verdict.reason().as_str());
    eprintln!(
        "{state} ({reason}): {} pages ({} failed), {} records ({} dropped for a missing required field), {} compute units, {:.2}s, {:.0} pages/s",
        p.pages_done,
        p.pages_failed,
        p.records,
        p.records_dropped,
        p.compute_units,
        secs,
        p.pages_done as f64 / secs
    );
}

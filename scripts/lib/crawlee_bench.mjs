// The Crawlee side of `scripts/bench-browser --compare-crawlee`: PlaywrightCrawler renders the
// same JS catalogue with the same Chromium binary and flags, the same number of browsers and
// pages per browser, waits for the same `#done` element and extracts the same two fields,
// writing one JSON line per record.
//
//   node crawlee_bench.mjs TASK.json OUT.jsonl BROWSERS PAGES_PER_BROWSER CHROMIUM
import fs from 'node:fs';
import { PlaywrightCrawler, Configuration } from 'crawlee';
import { chromium } from 'playwright';

const [taskPath, outPath, browsers, perBrowser, executablePath] = process.argv.slice(2);
const task = JSON.parse(fs.readFileSync(taskPath, 'utf8'));
const concurrency = Number(browsers) * Number(perBrowser);
const out = fs.createWriteStream(outPath);

const crawler = new PlaywrightCrawler({
  launchContext: {
    launcher: chromium,
    launchOptions: {
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    },
  },
  browserPoolOptions: {
    useFingerprints: false,
    maxOpenPagesPerBrowser: Number(perBrowser),
    retireBrowserAfterPageCount: 100,
  },
  minConcurrency: concurrency,
  maxConcurrency: concurrency,
  maxRequestRetries: 2,
  requestHandlerTimeoutSecs: 30,
  async requestHandler({ page }) {
    await page.waitForSelector('#done', { state: 'attached', timeout: 10000 });
    const records = await page.$$eval('div.product', (items) => items.map((item) => ({
      title: item.querySelector('h2 a')?.textContent.trim() ?? null,
      price: item.querySelector('.price')?.textContent.trim() ?? null,
    })));
    for (const record of records) out.write(JSON.stringify(record) + '\n');
  },
}, new Configuration({ persistStorage: false, purgeOnStart: true }));

await crawler.run(task.start_urls);
await new Promise((resolve) => out.end(resolve));

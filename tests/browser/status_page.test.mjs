// The status page of `cascade run` as a person sees it, in real headless Chromium (Debian's,
// driven by playwright-core; no downloaded browser), while a sync against cascade-sim runs and
// faults are injected: the stage tree, counts that move, an alarm turning to ALARM, no request
// leaving the daemon's address, no secret on the page, and a "disconnected" state once the
// daemon is gone. Keeps a screenshot.
//
// Exit 0 passed, 1 failed, 77 skipped (the reason printed) when node is too old or Chromium or
// playwright-core is missing.
//
// Environment: CASCADE_BIN, CASCADE_SIM_BIN (the binaries), CASCADE_ARTIFACTS (where the
// screenshot goes; default the system temp dir), CASCADE_CHROMIUM (the browser; default
// /usr/bin/chromium, then chromium on PATH).
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const PASS = 0, FAIL = 1, SKIP = 77;
const TOTAL_MS = 120_000;
const SECRET = 'page-test-secret-7f3a9c';

function log(...a) {
  console.log('[status-page]', ...a);
}

function skip(why) {
  console.log('SKIPPED: ' + why);
  process.exit(SKIP);
}

function executable(p) {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findChromium() {
  if (process.env.CASCADE_CHROMIUM !== undefined) {
    const p = process.env.CASCADE_CHROMIUM;
    return executable(p) ? p : null;
  }
  if (executable('/usr/bin/chromium')) return '/usr/bin/chromium';
  for (const dir of (process.env.PATH || '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const p = join(dir, name);
      if (dir && executable(p)) return p;
    }
  }
  return null;
}

// Polls fn until it returns a truthy value; throws with what was last seen at the deadline.
async function until(what, fn, ms) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// A child whose stdout is collected; waitFor(re) resolves with the first match.
function start(name, cmd, args, env) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const proc = { name, child, out: '', err: '', exited: null };
  child.stdout.on('data', (d) => (proc.out += d));
  child.stderr.on('data', (d) => (proc.err += d));
  child.on('exit', (code, signal) => (proc.exited = { code, signal }));
  proc.waitFor = (re, ms) =>
    until(`${name} to print ${re}`, () => {
      if (proc.exited) throw new Error(`${name} exited ${JSON.stringify(proc.exited)}: ${proc.err.slice(-2000)}`);
      return proc.out.match(re);
    }, ms);
  return proc;
}

async function stop(proc) {
  if (!proc || proc.exited) return;
  proc.child.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  while (!proc.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!proc.exited) proc.child.kill('SIGKILL');
}

function pipelineYaml(sim, db) {
  // The example's shape, paced to about 6 requests/s so the first run lasts ~20 s and the page
  // sees it move; one receive and no retry so a 500 dead-letters at once and the alarm fires.
  // The visibility timeout outlasts the wait for the rate limiter, so nothing dead-letters before
  // the faults come.
  return `name: page-test
source:
  base_url: ${sim}
  headers: { Authorization: "Bearer ${SECRET}" }
  rate_limit: { per_second: 6, burst: 1 }
  quota: { requests: 100000, per: 1d }
  timeout: 5s
  retry: { attempts: 1, backoff: 1ms..2ms }
storage: sqlite:${db}
queues: { visibility_timeout: 2m, max_receive_count: 1, retention: 14d }
stages:
  branches:
    schedule: rate(1 minute)
    inputs:
      branch: [Scranton, Akron, Buffalo, Rochester, Syracuse, Utica, Binghamton,
               Albany, Nashua, Pittsfield, Stamford, Yonkers, New York]
    request: GET /branches?branch={branch}
    records: result
    key: { branch_id: id }
    emit: { salespersons: { branch_id: "{record.id}" } }
  salespersons:
    request: GET /employees?branch_id={branch_id}
    records: result.employees
    where: occupation == "salesperson"
    key: { employee_id: id, branch_id: "{message.branch_id}" }
    concurrency: 2
    emit: { sales: { employee_id: "{record.id}", branch_id: "{message.branch_id}" } }
  sales:
    request: GET /sales?employee_id={employee_id}
    records: result.sales
    key: { sale_id: id, employee_id: "{message.employee_id}" }
    attach: { branch_id: "{message.branch_id}" }
    concurrency: 2
alarms:
  - { name: sales_dlq, metric: dlq_depth, stage: sales, statistic: Maximum, threshold: ">= 1", period: 5s, treat_missing_data: ignore }
  - { name: sales_errors, metric: errors, stage: sales, threshold: ">= 1", period: 1m, treat_missing_data: notBreaching }
notify:
  - { type: log }
`;
}

async function main() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 18) skip(`node ${process.versions.node} is older than 18`);
  const chromiumPath = findChromium();
  if (!chromiumPath)
    skip(`no Chromium (${process.env.CASCADE_CHROMIUM !== undefined ? 'CASCADE_CHROMIUM=' + process.env.CASCADE_CHROMIUM + ' is not executable' : 'neither /usr/bin/chromium nor chromium on PATH'}); scripts/setup.sh installs Debian's`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    skip(`playwright-core is not installed (npm ci --prefix tests/browser): ${e.message.split('\n')[0]}`);
  }
  const bin = process.env.CASCADE_BIN, simBin = process.env.CASCADE_SIM_BIN;
  if (!bin || !executable(bin) || !simBin || !executable(simBin))
    throw new Error('CASCADE_BIN and CASCADE_SIM_BIN must name the built binaries');
  const artifacts = process.env.CASCADE_ARTIFACTS || tmpdir();
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'status-page.png');
  const dir = mkdtempSync(join(tmpdir(), 'cascade-page-'));

  let sim, daemon, browser;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    await stop(daemon);
    await stop(sim);
    rmSync(dir, { recursive: true, force: true });
  };
  const timer = setTimeout(async () => {
    console.error(`FAILED: the whole test took over ${TOTAL_MS / 1000} s`);
    await cleanup();
    process.exit(FAIL);
  }, TOTAL_MS);
  try {
    sim = start('cascade-sim', simBin, ['--port', '0']);
    const simUrl = (await sim.waitFor(/listening on (http:\/\/[^\s]+)/, 15_000))[1].replace(/\/$/, '');
    log('simulator at', simUrl);
    const pipeline = join(dir, 'pipeline.yaml');
    writeFileSync(pipeline, pipelineYaml(simUrl, join(dir, 'cascade.db')));
    daemon = start('cascade run', bin, ['run', pipeline, '--listen', '127.0.0.1:0', '--poll', '250ms'], { LOGGING_LEVEL: 'warning' });
    const base = (await daemon.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000))[1];
    log('daemon at', base);

    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      // The sandbox needs user namespaces, which containers and root often lack; the page is ours.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const foreign = [], problems = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base)) foreign.push(r.url());
    });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push('console error: ' + m.text());
    });
    await page.goto(base, { waitUntil: 'load' });

    // The tree of stages, as names a person reads.
    const names = await until('the three stage names', async () => {
      const got = await page.locator('[data-testid="stage-name"]').allInnerTexts();
      return ['branches', 'salespersons', 'sales'].every((n) => got.includes(n)) && got;
    }, 20_000);
    log('stages shown:', names.join(', '));
    // Children are drawn inside their parent's branch of the tree.
    const nested = await page.locator('[data-stage="branches"] + ul [data-stage="salespersons"] + ul [data-stage="sales"]').count();
    if (nested !== 1) throw new Error('the stage tree is not branches > salespersons > sales');
    const pipelineName = await page.locator('[data-testid="pipeline"]').innerText();
    if (pipelineName !== 'page-test') throw new Error(`pipeline name shown as "${pipelineName}"`);
    await until('the connection badge to say live', async () => (await page.locator('[data-testid="connection"]').innerText()) === 'live', 10_000);

    // A count that moves: the records shown on the stage cards, read twice.
    const records = async () => {
      const texts = await page.locator('[data-testid="records"]').allInnerTexts();
      return texts.reduce((sum, t) => sum + Number(t.replace(/[^0-9]/g, '')), 0);
    };
    const first = await records();
    const second = await until(`the records shown (${first}) to grow`, async () => {
      const n = await records();
      return n > first && n;
    }, 30_000);
    log(`records shown: ${first} -> ${second}`);

    // Faults while the run is under way: every /sales answers 500; with one receive allowed the
    // messages dead-letter and the DLQ alarm fires.
    const res = await fetch(simUrl + '/admin/faults', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ '5xx': { p: 1, path: '/sales' } }),
    });
    if (!res.ok) throw new Error('POST /admin/faults answered ' + res.status);
    log('faults injected: 500s on /sales');
    const alarm = page.locator('[data-testid="alarm"][data-alarm="sales_dlq"] [data-testid="alarm-state"]');
    await until('alarm sales_dlq to show ALARM', async () => (await alarm.innerText()) === 'ALARM', 60_000);
    const dlq = Number((await page.locator('[data-stage="sales"] [data-testid="dlq-depth"]').innerText()).replace(/[^0-9]/g, ''));
    if (!(dlq >= 1)) throw new Error(`sales DLQ shown as ${dlq} while its alarm fires`);
    await until('the alarm history to show the change', async () =>
      (await page.locator('[data-testid="alarm"][data-alarm="sales_dlq"] [data-testid="alarm-history"]').innerText()).includes('→ ALARM'), 10_000);
    log(`alarm sales_dlq shows ALARM, sales DLQ ${dlq}`);
    const next = await page.locator('[data-testid="next-fire"]').first().innerText();
    if (!/in /.test(next)) throw new Error(`next tick shown as "${next}"`);
    const chart = await page.locator('[data-testid="chart-svg"] rect.bar').count();
    if (chart < 1) throw new Error('the records-per-minute chart has no bar');
    await page.screenshot({ path: shot, fullPage: true });
    log('screenshot:', shot);

    const text = await page.locator('body').innerText();
    const html = await page.content();
    if (text.includes(SECRET) || html.includes(SECRET)) throw new Error('the page shows the source header secret');
    if (foreign.length) throw new Error('the page requested other addresses: ' + foreign.join(', '));
    if (problems.length) throw new Error(problems.join('; '));

    // The daemon gone, the page says so instead of showing stale numbers as live.
    await stop(daemon);
    await until('the page to show disconnected', async () => (await page.locator('[data-testid="connection"]').innerText()) === 'disconnected', 15_000);
    log('after SIGTERM the page shows disconnected');
    clearTimeout(timer);
    await cleanup();
    console.log('PASSED');
    return PASS;
  } catch (e) {
    clearTimeout(timer);
    console.error('FAILED:', e && e.stack ? e.stack : e);
    if (daemon) console.error('cascade run stderr (tail):\n' + daemon.err.slice(-3000));
    await cleanup();
    return FAIL;
  }
}

main().then((code) => process.exit(code), (e) => {
  console.error('FAILED:', e && e.stack ? e.stack : e);
  process.exit(FAIL);
});

// node status-page.js <page url> <screenshot.png> [timeout ms]
// Opens the relay's status page in headless Debian Chromium (CHROMIUM, default /usr/bin/chromium)
// through playwright-core, waits until the page has read the relay's report and drawn its three
// charts, then prints one line "[result] {facts, charts}" with the text each [data-fact] element
// shows and what each chart drew, and saves a full-page screenshot. Console messages, page
// errors, CSP violations and every request the page makes are printed too, so the test can
// check that the page loads nothing but itself and its JSON. Used by e2e/statuspage_test.go.
const { chromium } = require('playwright-core');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

(async () => {
  const url = process.argv[2];
  const shot = process.argv[3];
  const timeout = Number(process.argv[4] || 60000);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 440 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let code = 0;
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => console.log(`[console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`[pageerror] ${e}`));
    page.on('request', (r) => console.log(`[request] ${r.method()} ${r.url()}`));
    page.on('requestfailed', (r) => console.log(`[requestfailed] ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.log(`[csp] ${e.violatedDirective} blocked ${e.blockedURI}`);
      });
    });
    const res = await page.goto(url);
    console.log(`[page] ${res.status()} csp=${res.headers()['content-security-policy'] ? 'set' : 'missing'}`);
    await page.waitForFunction(() => {
      const svgs = Array.from(document.querySelectorAll('svg[data-chart]'));
      return Number(document.body.getAttribute('data-updates')) >= 1 && svgs.length === 3 &&
        svgs.every((s) => s.getAttribute('data-points') !== null && s.querySelector('polyline'));
    }, null, { timeout });
    const result = await page.evaluate(() => {
      const facts = {};
      document.querySelectorAll('[data-fact]').forEach((el) => { facts[el.getAttribute('data-fact')] = el.textContent; });
      const charts = {};
      document.querySelectorAll('svg[data-chart]').forEach((s) => {
        const line = s.querySelector('polyline');
        const box = line.getBBox();
        charts[s.getAttribute('data-chart')] = {
          points: Number(s.getAttribute('data-points')),
          sum: Number(s.getAttribute('data-sum')),
          vertices: line.getAttribute('points').trim().split(/\s+/).length,
          height: box.height,
          width: s.getBoundingClientRect().width,
        };
      });
      return { facts, charts, updates: Number(document.body.getAttribute('data-updates')) };
    });
    await page.screenshot({ path: shot, fullPage: true });
    console.log('[result] ' + JSON.stringify(result));
  } catch (e) {
    console.log(`[driver] ${e}`);
    code = 1;
  }
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
})();

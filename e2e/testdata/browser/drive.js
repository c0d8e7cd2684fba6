// node drive.js <page url> [timeout ms]
// Opens the page in headless Debian Chromium (CHROMIUM, default /usr/bin/chromium) through
// playwright-core, waits for window.__done, prints console output and every network request the
// page made (incl. failures). Used by e2e/tunnel_test.go.
const { chromium } = require('playwright-core');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

(async () => {
  const url = process.argv[2];
  const timeout = Number(process.argv[3] || 60000);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => console.log(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[pageerror] ${e}`));
  page.on('requestfailed', (r) => console.log(`[requestfailed] ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}`));
  page.on('response', async (r) => {
    const req = r.request();
    if (req.method() === 'GET' && !/api|tunnel/.test(req.url())) return;
    console.log(`[net] ${req.method()} ${req.url()} -> ${r.status()} req-headers=${JSON.stringify(await req.allHeaders())}`);
  });
  await page.goto(url);
  try {
    await page.waitForFunction(() => window.__done === true, null, { timeout });
  } catch (e) {
    console.log('[driver] timed out waiting for window.__done');
  }
  await page.waitForTimeout(1500);
  console.log('[driver] page log:', JSON.stringify(await page.evaluate(() => window.log)));
  // leaving the page fires visibilitychange/pagehide: the SDK flushes client reports (sendBeacon) then
  await page.goto('about:blank');
  await page.waitForTimeout(1500);
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
})();

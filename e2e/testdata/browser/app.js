// Bundled by esbuild into sentry-app.js (e2e/tunnel_test.go); exposes window.Sentry and window.runAll().
import * as Sentry from '@sentry/browser';
window.Sentry = Sentry;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const q = new URLSearchParams(location.search);

window.log = [];
const log = (...a) => { window.log.push(a.join(' ')); console.log(...a); };

window.runAll = async function runAll() {
  const dsn = q.get('dsn');
  const tunnel = q.get('tunnel') || undefined;
  const lifecycle = q.get('lifecycle') || undefined; // 'static' for classic transactions
  const replay = q.get('replay') === '1';
  const integrations = [Sentry.browserTracingIntegration()];
  if (replay) integrations.push(Sentry.replayIntegration({ maskAllText: false, blockAllMedia: false }));
  Sentry.init({
    dsn,
    tunnel,
    release: 'relay-clients@1.0.0',
    environment: 'test',
    tracesSampleRate: 1.0,
    replaysSessionSampleRate: replay ? 1.0 : 0,
    replaysOnErrorSampleRate: replay ? 1.0 : 0,
    enableLogs: true,
    sendDefaultPii: true,
    debug: q.get('debug') === '1',
    ...(lifecycle ? { traceLifecycle: lifecycle } : {}),
    // hdr=1: a request header outside the CORS-safelisted ones makes the cross-origin POST non-simple
    // => CORS preflight. X-Requested-With is one Sentry's CORS answer allows (an arbitrary header is
    // refused by Sentry and the relay alike).
    ...(q.get('hdr') === '1' ? { transportOptions: { headers: { 'X-Requested-With': 'XMLHttpRequest' } } } : {}),
    integrations,
  });
  await sleep(300);
  if (q.get('only') === 'ratelimit') {
    for (let i = 0; i < 5; i++) { log('probe', Sentry.captureMessage(`browser: rate-limit probe ${i}`)); await Sentry.flush(2000); await sleep(200); }
    await Sentry.startSpan({ name: 'rate-limit-tx', forceTransaction: true }, () => sleep(1));
    await Sentry.flush(3000);
    window.__done = true;
    return;
  }

  // (a) error event: message + exception
  log('message', Sentry.captureMessage('browser: a test message', 'warning'));
  await Sentry.flush(2000);
  try { throw new TypeError('browser: a test exception'); } catch (e) { log('exception', Sentry.captureException(e)); }
  await Sentry.flush(2000);

  // (c) attachment
  Sentry.withScope((scope) => {
    scope.addAttachment({ filename: 'hello.txt', data: 'hello from @sentry/browser\n', contentType: 'text/plain' });
    scope.addAttachment({ filename: 'blob.bin', data: new Uint8Array([0, 1, 2, 3, 255, 10, 120]) });
    scope.setUser({ id: '42', email: 'jane@example.com' });
    log('attachment event', Sentry.captureException(new Error('browser: exception with attachments')));
  });
  await Sentry.flush(2000);

  // (b) a manual transaction/span tree (pageload is also traced by browserTracingIntegration)
  await Sentry.startSpan({ name: 'browser-test-transaction', op: 'task', forceTransaction: true }, async () => {
    await Sentry.startSpan({ name: 'child work', op: 'function' }, () => sleep(10));
  });
  await Sentry.flush(2000);

  // (e) user feedback, linked to an event, with an attachment on the feedback
  const evId = Sentry.captureMessage('browser: event that feedback refers to');
  await Sentry.flush(2000);
  log('feedback', Sentry.captureFeedback(
    { message: 'browser: it broke', name: 'Jane Doe', email: 'jane@example.com', associatedEventId: evId, url: location.href, source: 'api' },
    { attachments: [{ filename: 'screenshot.png', data: new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), contentType: 'image/png' }] }));
  await Sentry.flush(2000);

  // extra: logs and metrics
  Sentry.logger.info('browser: a structured log line', { user: 'jane' });
  if (Sentry.metrics && Sentry.metrics.count) Sentry.metrics.count('browser.clicks', 2);
  await Sentry.flush(3000);

  // (d) sessions: browserSessionIntegration sent one at page load; start a new one by hand too
  Sentry.startSession && Sentry.startSession();
  Sentry.captureSession && Sentry.captureSession();
  await Sentry.flush(2000);
  if (replay) { await sleep(6000); await Sentry.flush(3000); }
  window.__done = true;
};

// node send.js <DSN>   (e2e/clients_test.go)
// @sentry/node 11 sends what it can at a DSN: events, attachments (one above the transport's 32 KiB
// gzip threshold), a span tree, a session, feedback, a check-in and logs. It prints "id <kind> <event
// id>" for every event it captured, for the test to find them upstream.
const Sentry = require('@sentry/node');
const dsn = process.argv[2];

Sentry.init({
  dsn,
  release: 'relay-e2e@1.0.0',
  environment: 'e2e',
  serverName: 'e2e-host',
  tracesSampleRate: 1.0,
  enableLogs: true,
  sendDefaultPii: true,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const id = (kind, v) => console.log('id', kind, v);

(async () => {
  id('message', Sentry.captureMessage('node: a test message', 'warning'));
  await Sentry.flush(2000);
  try { throw new TypeError('node: a test exception'); } catch (e) { id('exception', Sentry.captureException(e)); }
  await Sentry.flush(2000);

  Sentry.withScope((scope) => {
    scope.addAttachment({ filename: 'hello.txt', data: 'hello from @sentry/node\n', contentType: 'text/plain' });
    scope.addAttachment({ filename: 'blob.bin', data: new Uint8Array([0, 1, 2, 3, 255, 10, 120]) });
    id('attachments', Sentry.captureException(new Error('node: exception with attachments')));
  });
  await Sentry.flush(2000);

  // Above 32 KiB the transport gzips the body.
  Sentry.withScope((scope) => {
    scope.addAttachment({ filename: 'big.txt', data: 'x'.repeat(40 * 1024) + '\n', contentType: 'text/plain' });
    id('big', Sentry.captureMessage('node: event with a 40 KiB attachment'));
  });
  await Sentry.flush(2000);

  await Sentry.startSpan({ name: 'node-e2e-transaction', op: 'task' }, async () => {
    await Sentry.startSpan({ name: 'SELECT 1', op: 'db.query' }, () => sleep(10));
  });
  await Sentry.flush(2000);

  Sentry.startSession({ user: { id: '42' } });
  Sentry.captureSession();
  Sentry.endSession();
  await Sentry.flush(2000);

  const evId = Sentry.captureMessage('node: event that feedback refers to');
  id('feedback-target', evId);
  await Sentry.flush(2000);
  id('feedback', Sentry.captureFeedback({ message: 'node: it broke', name: 'Jane Doe', email: 'jane@example.com', associatedEventId: evId }));
  await Sentry.flush(2000);

  Sentry.captureCheckIn({ monitorSlug: 'node-e2e-cron', status: 'ok', duration: 2 });
  Sentry.logger.info('node: a structured log line', { user: 'jane' });
  await Sentry.flush(5000);
  await Sentry.close(5000);
  console.log('done');
})();

#!/usr/bin/ruby
# ruby send.rb DSN   -- Debian's ruby-sentry-ruby 5.3.0 sends at a DSN (e2e/clients_test.go).
# Below 30 KiB its transport sends an empty Content-Encoding header, above it gzips. Prints
# "id <kind> <event id>" for every event it captured, for the test to find them upstream.
require "sentry-ruby"

Sentry.init do |config|
  config.dsn = ARGV[0]
  config.release = "relay-e2e@1.0.0"
  config.environment = "e2e"
  config.server_name = "e2e-host"
  config.traces_sample_rate = 1.0
  config.send_default_pii = true
  config.background_worker_threads = 0 # send synchronously, in order
  config.auto_session_tracking = true
end
puts "sentry-ruby #{Sentry::VERSION}"

def out(kind, event)
  raise "sentry-ruby dropped the #{kind} event" unless event
  puts "id #{kind} #{event.event_id}"
  $stdout.flush
end

out("message", Sentry.capture_message("ruby: a test message", level: :warning))
begin
  1 / 0
rescue ZeroDivisionError => e
  out("exception", Sentry.capture_exception(e))
end
Sentry.with_scope do |scope|
  scope.set_extras(blob: "x" * (40 * 1024))
  out("big", Sentry.capture_message("ruby: event with 40 KiB of extra"))
end
tx = Sentry.start_transaction(name: "ruby-e2e-transaction", op: "task")
tx.with_child_span(op: "db.query", description: "SELECT 1") { sleep 0.01 }
tx.finish
3.times { Sentry.with_session_tracking { } }
Sentry.session_flusher&.flush
puts "done"

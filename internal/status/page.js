// The status page's script: it reads status.json beside the page every
// few seconds, fills in the facts (textContent only: nothing from the report
// is ever parsed as markup) and draws the last hour as SVG charts.
(function () {
  'use strict';
  var REFRESH_MS = 5000;
  var SVGNS = 'http://www.w3.org/2000/svg';
  var W = 600, H = 160, TOP = 24, BOTTOM = 136;
  var jsonURL = new URL(location.pathname.replace(/\/+$/, '') + '.json', location.href);

  function fact(name, text) {
    document.querySelectorAll('[data-fact="' + name + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }
  function count(n) { return String(n); }
  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }
  function rate(r) { return r.toFixed(2); }
  function when(iso) {
    if (!iso) return '–';
    var d = new Date(iso);
    return d.toLocaleString();
  }
  function age(sec) {
    sec = Math.floor(sec);
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min ' + (sec % 60) + ' s';
    if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + Math.floor(sec % 3600 / 60) + ' min';
    return Math.floor(sec / 86400) + ' d ' + Math.floor(sec % 86400 / 3600) + ' h';
  }
  function state(name, value, note) {
    var el = document.querySelector('[data-fact="' + name + '"]');
    el.textContent = value + (note || '');
    el.setAttribute('data-state', value);
  }
  function show(sel, on) { document.querySelectorAll(sel).forEach(function (el) { el.hidden = !on; }); }
  function problem(name, msg) {
    fact(name, msg || '');
    show('[data-fact="' + name + '"]', !!msg);
  }

  function el(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // draw renders one counter's growth per interval over the last hour,
  // right edge = the report's time.
  function draw(svg, ends, values, nowMs, interval) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    // The last hour; a younger relay's history fills at least five minutes
    // of the width instead of a sliver at the right edge.
    var have = ends.length > 0 ? nowMs - (ends[0] - interval * 1000) : 0;
    var span = Math.min(3600, Math.max(300, Math.ceil(have / 60000) * 60)) * 1000;
    var peak = 0, sum = 0;
    values.forEach(function (v) { peak = Math.max(peak, v); sum += v; });
    var top = Math.max(1, peak);
    var x = function (t) { return Math.max(0, Math.min(W, W - (nowMs - t) / span * W)); };
    var y = function (v) { return BOTTOM - v / top * (BOTTOM - TOP); };
    svg.appendChild(el('line', { 'class': 'grid', x1: 0, x2: W, y1: TOP, y2: TOP }));
    svg.appendChild(el('line', { 'class': 'grid', x1: 0, x2: W, y1: BOTTOM, y2: BOTTOM }));
    if (ends.length > 0) {
      var pts = [];
      for (var i = 0; i < ends.length; i++) {
        pts.push(x(ends[i] - interval * 1000).toFixed(1) + ',' + y(values[i]).toFixed(1));
        pts.push(x(ends[i]).toFixed(1) + ',' + y(values[i]).toFixed(1));
      }
      var first = x(ends[0] - interval * 1000).toFixed(1), last = x(ends[ends.length - 1]).toFixed(1);
      svg.appendChild(el('polygon', { 'class': 'area', points: first + ',' + BOTTOM + ' ' + pts.join(' ') + ' ' + last + ',' + BOTTOM }));
      svg.appendChild(el('polyline', { 'class': 'line', points: pts.join(' ') }));
    }
    var mins = span / 60000;
    svg.appendChild(el('text', { x: 2, y: TOP - 5 }, peak + ' per ' + interval + ' s'));
    svg.appendChild(el('text', { x: 2, y: H - 3 }, '−' + mins + ' min'));
    svg.appendChild(el('text', { x: W / 2, y: H - 3, 'text-anchor': 'middle' }, '−' + (mins / 2) + ' min'));
    svg.appendChild(el('text', { x: W - 2, y: H - 3, 'text-anchor': 'end' }, 'now'));
    svg.setAttribute('data-points', String(values.length));
    svg.setAttribute('data-sum', String(sum));
    var cap = svg.parentNode.querySelector('[data-per]');
    cap.textContent = '· ' + sum + ' in the last hour';
  }

  function render(r) {
    fact('version', r.version);
    fact('mode', r.mode);
    fact('roles', [r.ingest ? 'ingest' : '', r.worker ? 'worker' : ''].filter(Boolean).join(' + '));
    fact('started_at', when(r.started_at));
    fact('time', new Date(r.time).toLocaleTimeString());

    state('upstream.state', r.upstream.state, r.upstream.denied ? ' (denied)' : '');
    fact('upstream.url', r.upstream.url);
    fact('upstream.since', when(r.upstream.since));

    show('#registration', !!r.registration);
    if (r.registration) {
      state('registration.state', r.registration.state);
      fact('registration.reason', r.registration.reason || '–');
    }

    fact('stream.messages', count(r.stream.messages));
    fact('stream.bytes', bytes(r.stream.bytes));
    fact('stream.pending', count(r.stream.pending));
    fact('stream.ack_pending', count(r.stream.ack_pending));
    problem('stream.error', r.stream.error);

    show('#spool', !!r.spool);
    if (r.spool) {
      fact('spool.records', count(r.spool.records));
      fact('spool.bytes', bytes(r.spool.bytes));
      fact('spool.disk_bytes', bytes(r.spool.disk_bytes));
      fact('spool.oldest', r.spool.oldest ? age(r.spool.oldest_age_seconds) + ' old' : '–');
      fact('spool.dead_letters', count(r.spool.dead_letters));
      problem('spool.error', r.spool.error);
    }

    fact('totals.accepted', count(r.totals.accepted));
    fact('totals.forwarded', count(r.totals.forwarded));
    fact('totals.spooled', count(r.totals.spooled));
    fact('rates.window', Math.round(r.rates.window_seconds) + ' s');
    fact('rates.accepted', rate(r.rates.accepted));
    fact('rates.forwarded', rate(r.rates.forwarded));
    fact('rates.spooled', rate(r.rates.spooled));

    var nowMs = Date.parse(r.time);
    ['accepted', 'forwarded', 'spooled'].forEach(function (k) {
      draw(document.querySelector('svg[data-chart="' + k + '"]'), r.history.end, r.history[k], nowMs, r.history.interval_seconds);
    });
  }

  var updates = 0;
  function refresh() {
    fetch(jsonURL, { cache: 'no-store' })
      .then(function (res) {
        if (!res.ok) throw new Error('status.json: HTTP ' + res.status);
        return res.json();
      })
      .then(function (r) {
        render(r);
        show('#err', false);
        updates++;
        document.body.setAttribute('data-updates', String(updates));
      })
      .catch(function (e) {
        var err = document.getElementById('err');
        err.textContent = '— the relay does not answer: ' + e.message;
        err.hidden = false;
      })
      .finally(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();

// The monitor page served at / and /debug: plain HTML, CSS and JavaScript,
// no build step, nothing loaded from elsewhere. It renders /api/state (the
// MonitorState of proto/cluster2/v1/monitor.proto as protobuf's JSON
// printer writes it: 64-bit integers as strings, Timestamps as RFC 3339
// text, unset messages absent) and follows /api/events; its buttons POST
// with the control token (monitor_routes.h), which MonitorServer puts in
// place of kMonitorPageTokenPlaceholder (or an empty string, for a Host
// that may not have it: then the buttons say so). Per worker: recycle,
// debug, stacks (threads and frames shown below the table) and, on the
// debugged worker, end debug; the open debug session and how to connect
// come with the state, so every open page shows them.
//
// Charts (inline SVG, one <polyline> per line and stretch without gaps):
// #chart-requests, #chart-latency (per slot: p99 solid, p50 dashed),
// #chart-rss, #chart-cpu, and with a cache #chart-cache-hits and
// #chart-cache-keys (per namespace). They start from /api/history (the
// count of samples it gave is #charts' data-history) and append each
// pushed state's `latest` sample; 5 minutes are kept. Below: the cache's
// namespaces (#cache), the status values (#statuses) and the event
// timeline (#timeline, newest first, one row per event with data-kind).
#ifndef CLUSTER2_MASTER_INTERNAL_MONITOR_PAGE_H_
#define CLUSTER2_MASTER_INTERNAL_MONITOR_PAGE_H_

namespace cluster2 {

inline constexpr char kMonitorPageTokenPlaceholder[] = "@CONTROL_TOKEN@";

inline constexpr char kMonitorPage[] = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="cluster2-token" content="@CONTROL_TOKEN@">
<title>cluster2 monitor</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
  [hidden] { display: none !important; }
  h1 { font-size: 20px; margin: 0 0 .3em; }
  h2 { font-size: 16px; margin: 1.2em 0 .3em; }
  table { border-collapse: collapse; margin: .5em 0 1em; }
  th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; vertical-align: top; }
  th { background: #f4f4f4; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  #workers td, #workers th { white-space: nowrap; padding: 3px 8px; }
  #workers td.note { white-space: normal; max-width: 16em; font-size: 12px; }
  #workers button { font-size: 12px; margin-right: .2em; }
  .up { color: #0a0; font-weight: bold; } .marked { color: #c80; font-weight: bold; }
  .down { color: #c00; font-weight: bold; }
  .state-ready { color: #0a0; } .state-failed, .state-exited { color: #c00; }
  .state-debugging { color: #06c; font-weight: bold; }
  button { margin-right: .5em; }
  #version, #updated, .muted { color: #888; font-size: 12px; }
  #error, .error { color: #c00; }
  #debug-session { border: 1px solid #06c; padding: 0 1em 1em; margin: 1em 0; }
  pre { background: #f8f8f8; padding: .5em; overflow-x: auto; margin: .2em 0 .8em; }
  .thread-name { font-size: 14px; margin: .6em 0 0; }
  #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 12px 20px; }
  .chart { border: 1px solid #e4e4e4; border-radius: 4px; padding: 6px 8px 4px; }
  .chart h3 { font-size: 13px; font-weight: 600; margin: 0 0 2px; }
  .chart svg { display: block; width: 100%; height: auto; }
  .chart svg text { font: 10px system-ui, sans-serif; fill: #777; }
  .chart .grid { stroke: #eee; } .chart .axis { stroke: #bbb; }
  .legend { font-size: 12px; color: #555; min-height: 1.4em; }
  .legend span { margin-right: 12px; white-space: nowrap; }
  .legend i { display: inline-block; width: 14px; height: 3px; margin-right: 4px; vertical-align: middle; }
  #statuses code { font-size: 12px; word-break: break-all; }
  #statuses .who { color: #666; font-size: 12px; margin-right: 6px; }
  #timeline td { font-size: 13px; padding: 2px 10px; }
  .kind { font-weight: 600; }
  .kind-red { color: #c00; } .kind-amber { color: #b76e00; } .kind-green { color: #0a0; }
</style>
</head>
<body>
<h1>cluster2 <span id="name"></span> <span id="version"></span></h1>
<p>ECV: <span id="ecv">?</span> <span id="ecv-by"></span>
  <button id="markup">markUp</button><button id="markdown">markDown</button>
  <button id="restart">rolling restart</button>
  <button id="debug-fresh">debug fresh</button> <span id="error"></span></p>
<section id="debug-session" hidden>
  <h2>debug session</h2>
  <p>pid <span id="debug-pid"></span>, <span id="debug-protocol"></span> on
    <code id="debug-address"></code> <button id="debug-end">end debug</button></p>
  <pre id="debug-instructions"></pre>
</section>
<table id="workers">
  <thead><tr><th>slot</th><th>group</th><th>pid</th><th>state</th><th>uptime</th><th>restarts</th>
  <th>rss</th><th>cpu</th><th>requests</th><th>in flight</th><th>p50 / p99</th><th>lag</th>
  <th>note</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<section id="stacks" hidden>
  <h2 id="stacks-title"></h2>
  <div id="stacks-threads"></div>
</section>
<h2>last 5 minutes <span class="muted">(sampled every 2 s)</span></h2>
<div id="charts">
  <div class="chart" id="chart-requests"><h3>requests per second, per slot</h3><svg></svg><div class="legend"></div></div>
  <div class="chart" id="chart-latency"><h3>latency per slot: p99 solid, p50 dashed</h3><svg></svg><div class="legend"></div></div>
  <div class="chart" id="chart-rss"><h3>resident memory per slot</h3><svg></svg><div class="legend"></div></div>
  <div class="chart" id="chart-cpu"><h3>CPU per slot (100% = one core)</h3><svg></svg><div class="legend"></div></div>
  <div class="chart" id="chart-cache-hits" hidden><h3>cache hit ratio per namespace</h3><svg></svg><div class="legend"></div></div>
  <div class="chart" id="chart-cache-keys" hidden><h3>cache keys per namespace</h3><svg></svg><div class="legend"></div></div>
</div>
<section id="cache" hidden>
  <h2>cache <span id="cache-up"></span></h2>
  <table id="cache-namespaces">
    <thead><tr><th>namespace</th><th>keys</th><th>bytes</th><th>hits</th><th>misses</th><th>loads</th>
    <th>errors</th><th>waiting</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<h2>statuses</h2>
<table id="statuses">
  <thead><tr><th>name</th><th>values</th></tr></thead>
  <tbody></tbody>
</table>
<h2>events <span class="muted">(newest first)</span></h2>
<table id="timeline">
  <thead><tr><th>time</th><th>kind</th><th>slot / pid</th><th>group</th><th>detail</th></tr></thead>
  <tbody></tbody>
</table>
<p id="updated"></p>
<script>
var token = document.querySelector('meta[name="cluster2-token"]').content;
// A control action: POST with the control token; a refusal is shown, a
// JSON answer goes to onJson.
function control(url, onJson) {
  var error = document.getElementById('error');
  if (!token) {
    error.textContent =
        'open this page by IP address, localhost or the host name to use the buttons';
    return;
  }
  error.textContent = '';
  fetch(url, {method: 'POST', headers: {'X-Cluster2-Token': token}}).then(function (r) {
    return r.text().then(function (text) {
      var json = null;
      try { json = JSON.parse(text); } catch (e) {}
      if (!r.ok) {
        error.textContent = r.status + ' ' + (json && json.error ? json.error : text);
      } else if (onJson && json) {
        onJson(json);
      }
    });
  });
}
function text(id, value) { document.getElementById(id).textContent = value; }
// A new element; text (never HTML) from the server goes in as textContent.
function el(name, parent, content, className) {
  var e = document.createElement(name);
  if (content !== undefined) e.textContent = content;
  if (className) e.className = className;
  if (parent) parent.appendChild(e);
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
// The open debug session (null or absent: none): where and how to connect.
function renderDebug(session) {
  document.getElementById('debug-session').hidden = !session;
  if (!session) return;
  text('debug-pid', session.pid || session.supervised_pid);
  text('debug-protocol', session.protocol + (session.fresh ? ' (fresh worker)' : ''));
  text('debug-address', session.protocol === 'gdb' ? session.address : session.url);
  text('debug-instructions', session.instructions);
}
// A worker's stacks: each thread's name and frames, innermost first.
function renderStacks(dump) {
  text('stacks-title', 'stacks of pid ' + dump.pid + ' (' + dump.threads.length +
       ' threads, stopped for at most ' + Number(dump.gdb_time).toFixed(2) + ' s)');
  var list = document.getElementById('stacks-threads');
  clear(list);
  dump.threads.forEach(function (t) {
    el('h3', list, 'Thread ' + t.number + ' "' + t.name + '" (LWP ' + t.lwp + ')', 'thread-name');
    el('pre', list, t.frames.join('\n'));
  });
  document.getElementById('stacks').hidden = false;
}
function stacks(pid) {
  text('stacks-title', 'stacks of pid ' + pid + ': gdb is reading them...');
  clear(document.getElementById('stacks-threads'));
  document.getElementById('stacks').hidden = false;
  control('/api/stacks?pid=' + pid, renderStacks);
}
function button(td, label, onclick) {
  var b = el('button', td, label, label.replace(' ', '-'));
  b.onclick = onclick;
}

// Formats. 64-bit integers arrive as strings: Number() them first.
function num(v) { return Number(v) || 0; }
function trim(v, digits) { return String(Number(v.toFixed(digits))); }
function count(v) {
  v = num(v);
  return v >= 1e9 ? trim(v / 1e9, 1) + 'G' : v >= 1e6 ? trim(v / 1e6, 1) + 'M' :
         v >= 1e4 ? trim(v / 1e3, 1) + 'k' : trim(v, 1);
}
function bytes(v) {
  v = num(v);
  return v >= 1073741824 ? trim(v / 1073741824, 2) + ' GiB' : v >= 1048576 ? trim(v / 1048576, 1) + ' MiB' :
         v >= 1024 ? trim(v / 1024, 1) + ' KiB' : v + ' B';
}
function millis(s) {
  s = num(s) * 1000;
  return (s >= 100 ? s.toFixed(0) : s >= 1 ? trim(s, 1) : trim(s, 3)) + ' ms';
}
function secs(s) { return num(s).toFixed(1) + ' s'; }
function duration(s) {
  s = Math.floor(num(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor(s % 3600 / 60) + 'm';
}
function pad(n) { return (n < 10 ? '0' : '') + n; }
function clock(ms) {
  var d = new Date(ms);
  return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}
// Who an event or a status value is about: slot -1 is `other` (the
// cluster, or the master).
function who(slot, pid, other) {
  return (slot < 0 ? other : 'slot ' + slot) + (pid ? ' · ' + pid : '');
}

// ---- charts ----------------------------------------------------------
var SPAN = 300000;  // ms of samples kept and drawn
var samples = [];   // {t: ms, s: MonitorSample}, oldest first
var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
              '#17becf', '#7f7f7f', '#bcbd22'];
var SVG = 'http://www.w3.org/2000/svg';
var W = 560, H = 150, LEFT = 52, RIGHT = 8, TOP = 8, BOTTOM = 18;
// Appends a sample newer than the last; drops those older than SPAN.
function addSample(sample) {
  var t = sample && sample.at ? Date.parse(sample.at) : NaN;
  if (isNaN(t) || (samples.length && t <= samples[samples.length - 1].t)) return false;
  samples.push({t: t, s: sample});
  while (samples[0].t < t - SPAN) samples.shift();
  return true;
}
// The lines of one figure: per key (a slot, a namespace), its [t, value]
// points, split where the key is missing or its value is null.
function lines(entries, key, value) {
  var byKey = {};
  samples.forEach(function (x, i) {
    (entries(x.s) || []).forEach(function (e) {
      var k = key(e), v = value(e);
      var line = byKey[k] || (byKey[k] = {key: k, segments: [], last: -2});
      if (v === null || !isFinite(v)) return;
      if (line.last !== i - 1) line.segments.push([]);
      line.segments[line.segments.length - 1].push([x.t, v]);
      line.last = i;
    });
  });
  return Object.keys(byKey).map(function (k) { return byKey[k]; });
}
function niceMax(v) {
  if (!(v > 0)) return 1;
  var p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 2.5, 5, 10].map(function (m) { return m * p; }).filter(function (m) { return m >= v; })[0];
}
function svg(name, parent, attrs, content) {
  var e = document.createElementNS(SVG, name);
  Object.keys(attrs).forEach(function (a) { e.setAttribute(a, attrs[a]); });
  if (content !== undefined) e.textContent = content;
  parent.appendChild(e);
  return e;
}
// Draws `series` ({label, color, dash, segments}) in the chart `id`, the
// y axis from 0 to a rounded maximum (or `max`), the x axis the samples'
// time (at least 20 s, at most SPAN).
function ago(ms) {
  var s = Math.round(ms / 1000);
  return '-' + (s >= 60 && s % 60 === 0 ? s / 60 + ' min' : s >= 60 ? Math.floor(s / 60) + ' min ' + s % 60 + ' s' : s + ' s');
}
function drawChart(id, series, format, max, legend) {
  var box = document.getElementById(id), root = box.querySelector('svg');
  clear(root);
  root.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  var end = samples.length ? samples[samples.length - 1].t : Date.now();
  var start = Math.min(end - 20000, samples.length ? Math.max(samples[0].t, end - SPAN) : end - SPAN);
  var top = 0;
  series.forEach(function (s) {
    s.segments.forEach(function (seg) { seg.forEach(function (p) { top = Math.max(top, p[1]); }); });
  });
  top = max || niceMax(top);
  var w = W - LEFT - RIGHT, h = H - TOP - BOTTOM;
  function x(t) { return (LEFT + (t - start) / (end - start) * w).toFixed(1); }
  function y(v) { return (TOP + h - Math.min(v, top) / top * h).toFixed(1); }
  [0, 0.5, 1].forEach(function (f) {
    var yy = TOP + h - f * h;
    svg('line', root, {x1: LEFT, x2: W - RIGHT, y1: yy, y2: yy, 'class': f ? 'grid' : 'axis'});
    svg('text', root, {x: LEFT - 4, y: yy + 3, 'text-anchor': 'end'}, format(f * top));
  });
  svg('text', root, {x: LEFT, y: H - 4}, ago(end - start));
  svg('text', root, {x: W - RIGHT, y: H - 4, 'text-anchor': 'end'}, clock(end));
  var drawn = 0;
  series.forEach(function (s) {
    s.segments.forEach(function (seg) {
      if (seg.length === 1) {
        svg('circle', root, {cx: x(seg[0][0]), cy: y(seg[0][1]), r: 1.5, fill: s.color});
        return;
      }
      var attrs = {points: seg.map(function (p) { return x(p[0]) + ',' + y(p[1]); }).join(' '),
                   fill: 'none', stroke: s.color, 'stroke-width': 1.5, 'stroke-linejoin': 'round'};
      if (s.dash) attrs['stroke-dasharray'] = '4 3';
      svg('polyline', root, attrs).dataset.key = s.label;
      drawn++;
    });
  });
  if (!drawn) {
    svg('text', root, {x: LEFT + w / 2, y: TOP + h / 2, 'text-anchor': 'middle'},
        samples.length > 1 ? 'nothing to show' : 'waiting for samples');
  }
  var keys = box.querySelector('.legend');
  clear(keys);
  (legend || series).forEach(function (s) {
    var item = el('span', keys);
    el('i', item).style.background = s.color;
    item.appendChild(document.createTextNode(s.label));
  });
}
function slotLines(value) {
  return lines(function (s) { return s.slots; }, function (e) { return e.slot; }, value)
      .sort(function (a, b) { return a.key - b.key; })
      .map(function (l) { l.color = COLORS[l.key % COLORS.length]; l.label = 'slot ' + l.key; return l; });
}
function namespaceLines(value) {
  return lines(function (s) { return s.namespaces; }, function (e) { return e.namespace; }, value)
      .sort(function (a, b) { return a.key < b.key ? -1 : 1; })
      .map(function (l, i) { l.color = COLORS[i % COLORS.length]; l.label = l.key; return l; });
}
function drawCharts() {
  drawChart('chart-requests', slotLines(function (e) { return num(e.requests_per_second); }),
            function (v) { return count(v) + '/s'; });
  // Latency: no point for a slot that completed no request.
  function idle(e) { return !num(e.requests_per_second) && !num(e.latency_p99_seconds); }
  var p99 = slotLines(function (e) { return idle(e) ? null : num(e.latency_p99_seconds); });
  var p50 = slotLines(function (e) { return idle(e) ? null : num(e.latency_p50_seconds); });
  p50.forEach(function (l) { l.dash = true; });
  drawChart('chart-latency', p99.concat(p50), millis, 0, p99);
  // RSS 0: no heartbeat yet.
  drawChart('chart-rss', slotLines(function (e) { return num(e.rss_bytes) / 1048576 || null; }),
            function (v) { return trim(v, 1) + ' MiB'; });
  drawChart('chart-cpu', slotLines(function (e) { return num(e.cpu_ratio) * 100; }),
            function (v) { return trim(v, 1) + '%'; });
  // hit_ratio is -1 without reads: no point.
  drawChart('chart-cache-hits', namespaceLines(function (e) {
    return num(e.hit_ratio) < 0 ? null : num(e.hit_ratio) * 100;
  }), function (v) { return trim(v, 1) + '%'; }, 100);
  drawChart('chart-cache-keys', namespaceLines(function (e) { return num(e.keys); }), count);
}

// ---- state -----------------------------------------------------------
function renderWorkers(workers) {
  var body = document.querySelector('#workers tbody');
  clear(body);
  workers.forEach(function (w) {
    var tr = el('tr', body);
    tr.dataset.pid = w.pid;
    tr.dataset.slot = w.slot;
    var heartbeat = num(w.rss_bytes) > 0;
    [w.slot, w.group || '-', w.pid || '-', w.state, w.pid ? duration(w.uptime_seconds) : '-',
     w.restarts, heartbeat ? bytes(w.rss_bytes) : '-', heartbeat ? secs(w.cpu_seconds) : '-',
     count(w.requests_total), w.requests_in_flight,
     num(w.latency_p99_seconds) ? millis(w.latency_p50_seconds).slice(0, -3) + ' / ' + millis(w.latency_p99_seconds) : '-',
     heartbeat ? secs(w.heartbeat_lag_seconds) : '-', w.note].forEach(function (v, i) {
      var td = el('td', tr, v === undefined ? '' : v);
      if (i === 3) td.className = 'state-' + w.state;
      if (i >= 4 && i <= 11) td.className = 'num';
      if (i === 12) td.className = 'note';
    });
    var td = el('td', tr);
    if (w.pid && w.state === 'debugging') {
      button(td, 'end debug', function () { control('/api/debug/end', function () { renderDebug(null); }); });
    } else if (w.pid) {
      button(td, 'recycle', function () { control('/api/recycle?pid=' + w.pid); });
      button(td, 'debug', function () { control('/api/debug?pid=' + w.pid, renderDebug); });
      button(td, 'stacks', function () { stacks(w.pid); });
    }
  });
}
// Each status: per registrant (a worker, or the master) its value as
// compact JSON, or its error in red.
function renderStatuses(statuses) {
  var body = document.querySelector('#statuses tbody');
  clear(body);
  if (!statuses.length) {
    el('td', el('tr', body), 'no statuses registered', 'muted').colSpan = 2;
  }
  statuses.forEach(function (s) {
    var tr = el('tr', body);
    el('td', tr, s.name);
    var cell = el('td', tr);
    if (!(s.values || []).length) el('span', cell, s.sampled_at ? 'no values' : 'not read yet', 'muted');
    (s.values || []).forEach(function (v) {
      var line = el('div', cell);
      el('span', line, who(v.slot, v.pid, 'master'), 'who');
      if (v.error) {
        el('span', line, v.error, 'error');
      } else {
        el('code', line, v.value === undefined ? 'null' : JSON.stringify(v.value));
      }
    });
  });
}
var KINDS = {crashed: 'red', hung: 'red', gave_up: 'red', start_timeout: 'red', session_lost: 'red',
             ecv_down: 'red', recycled: 'amber', replacing: 'amber', marked_down: 'amber',
             ready: 'green', marked_up: 'green', ecv_up: 'green'};
function renderTimeline(events) {
  var body = document.querySelector('#timeline tbody');
  clear(body);
  events.slice(-50).reverse().forEach(function (e) {
    var tr = el('tr', body);
    tr.dataset.kind = e.kind;
    el('td', tr, e.at ? clock(Date.parse(e.at)) : '');
    el('td', tr, e.kind, 'kind' + (KINDS[e.kind] ? ' kind-' + KINDS[e.kind] : ''));
    el('td', tr, who(e.slot, e.pid, 'cluster'));
    el('td', tr, e.group || '');
    el('td', tr, e.detail || '');
  });
  if (!events.length) el('td', el('tr', body), 'no events yet', 'muted').colSpan = 5;
}
function renderCache(cache) {
  document.getElementById('cache').hidden = !cache;
  document.getElementById('chart-cache-hits').hidden = !cache;
  document.getElementById('chart-cache-keys').hidden = !cache;
  if (!cache) return;
  var up = document.getElementById('cache-up');
  up.textContent = cache.up ? 'up' : 'down';
  up.className = cache.up ? 'up' : 'down';
  var body = document.querySelector('#cache-namespaces tbody');
  clear(body);
  (cache.namespaces || []).forEach(function (n) {
    var tr = el('tr', body);
    el('td', tr, n.namespace);
    [count(n.keys), bytes(n.bytes), count(n.hits), count(n.misses), count(n.loads), count(n.errors),
     count(n.waiting)].forEach(function (v) { el('td', tr, v, 'num'); });
  });
  if (!(cache.namespaces || []).length) el('td', el('tr', body), 'no namespaces', 'muted').colSpan = 8;
}
function render(state) {
  text('name', state.cluster);
  text('version', state.version || '');
  var ecv = document.getElementById('ecv');
  ecv.textContent = state.ecv.health;
  ecv.className = state.ecv.health === 'up' ? 'up' : state.ecv.health === 'marked down' ? 'marked' : 'down';
  text('ecv-by', state.ecv.changed_by ? '(' + state.ecv.changed_by + ')' : '');
  renderWorkers(state.workers || []);
  renderDebug(state.debug);
  renderCache(state.cache);
  renderStatuses(state.statuses || []);
  renderTimeline(state.timeline || []);
  if (addSample(state.latest) || !chartsDrawn) drawCharts();
  chartsDrawn = true;
  text('updated', 'updated ' + clock(state.at ? Date.parse(state.at) : Date.now()));
}
var chartsDrawn = false;
['markup', 'markdown', 'restart'].forEach(function (action) {
  document.getElementById(action).onclick = function () { control('/api/' + action); };
});
document.getElementById('debug-fresh').onclick = function () {
  control('/api/debug?fresh=1', renderDebug);
};
document.getElementById('debug-end').onclick = function () {
  control('/api/debug/end', function () { renderDebug(null); });
};
// The history first, then what the pushes brought meanwhile (newer only).
fetch('/api/history').then(function (r) { return r.ok ? r.json() : {samples: []}; }).then(function (h) {
  var pushed = samples;
  samples = [];
  (h.samples || []).forEach(addSample);
  document.getElementById('charts').dataset.history = samples.length;
  pushed.forEach(addSample);
  drawCharts();
}).catch(function () {});
fetch('/api/state').then(function (r) { return r.json(); }).then(render);
var events = new EventSource('/api/events');
events.onmessage = function (e) { render(JSON.parse(e.data)); };
</script>
</body>
</html>
)HTML";

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_PAGE_H_

// The monitor page served at / and /debug: plain HTML, CSS and JavaScript,
// no build step. It renders /api/state and follows /api/events; its buttons
// POST with the control token (monitor_routes.h), which MonitorServer puts
// in place of kMonitorPageTokenPlaceholder (or an empty string, for a Host
// that may not have it: then the buttons say so). Per worker: recycle,
// debug, stacks (threads and frames shown below the table) and, on the
// debugged worker, end debug; the open debug session and how to connect
// come with the state, so every open page shows them.
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
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
  h1 { font-size: 20px; margin: 0 0 .5em; }
  table { border-collapse: collapse; margin: 1em 0; }
  th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
  th { background: #f4f4f4; }
  .up { color: #0a0; font-weight: bold; } .marked { color: #c80; font-weight: bold; }
  .down { color: #c00; font-weight: bold; }
  .state-ready { color: #0a0; } .state-failed, .state-exited { color: #c00; }
  button { margin-right: .5em; }
  #updated { color: #888; font-size: 12px; }
  #error { color: #c00; }
  .state-debugging { color: #06c; font-weight: bold; }
  #debug-session { border: 1px solid #06c; padding: 0 1em 1em; margin: 1em 0; }
  pre { background: #f8f8f8; padding: .5em; overflow-x: auto; margin: .2em 0 .8em; }
  .thread-name { font-size: 14px; margin: .6em 0 0; }
</style>
</head>
<body>
<h1>cluster2 <span id="name"></span></h1>
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
  <th>rss</th><th>cpu</th><th>requests</th><th>lag</th><th>note</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<section id="stacks" hidden>
  <h2 id="stacks-title"></h2>
  <div id="stacks-threads"></div>
</section>
<h2>statuses</h2>
<ul id="statuses"></ul>
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
// The open debug session (null: none): where and how to connect.
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
  list.innerHTML = '';
  dump.threads.forEach(function (t) {
    var h = document.createElement('h3');
    h.className = 'thread-name';
    h.textContent = 'Thread ' + t.number + ' "' + t.name + '" (LWP ' + t.lwp + ')';
    var pre = document.createElement('pre');
    pre.textContent = t.frames.join('\n');
    list.appendChild(h);
    list.appendChild(pre);
  });
  document.getElementById('stacks').hidden = false;
}
function stacks(pid) {
  text('stacks-title', 'stacks of pid ' + pid + ': gdb is reading them...');
  document.getElementById('stacks-threads').innerHTML = '';
  document.getElementById('stacks').hidden = false;
  control('/api/stacks?pid=' + pid, renderStacks);
}
function button(td, label, onclick) {
  var b = document.createElement('button');
  b.textContent = label;
  b.className = label.replace(' ', '-');
  b.onclick = onclick;
  td.appendChild(b);
}
function mib(b) { return b ? (b / 1048576).toFixed(1) + ' MiB' : '-'; }
function secs(s) { return s === undefined ? '-' : Number(s).toFixed(1) + ' s'; }
function render(state) {
  document.getElementById('name').textContent = state.cluster;
  var ecv = document.getElementById('ecv');
  ecv.textContent = state.ecv.health;
  ecv.className = state.ecv.health === 'up' ? 'up' : state.ecv.health === 'marked down' ? 'marked' : 'down';
  document.getElementById('ecv-by').textContent = '(' + state.ecv.changed_by + ')';
  var body = document.querySelector('#workers tbody');
  body.innerHTML = '';
  state.workers.forEach(function (w) {
    var tr = document.createElement('tr');
    tr.dataset.pid = w.pid;
    [w.id, w.group || '-', w.pid || '-', w.state, secs(w.uptime), w.restarts, mib(w.rss), secs(w.cpu),
     w.requests, secs(w.lag), w.note].forEach(function (v, i) {
      var td = document.createElement('td');
      td.textContent = v;
      if (i === 2) td.className = 'state-' + w.state;
      tr.appendChild(td);
    });
    var td = document.createElement('td');
    if (w.pid && w.state === 'debugging') {
      button(td, 'end debug', function () { control('/api/debug/end', function () { renderDebug(null); }); });
    } else if (w.pid) {
      button(td, 'recycle', function () { control('/api/recycle?pid=' + w.pid); });
      button(td, 'debug', function () { control('/api/debug?pid=' + w.pid, renderDebug); });
      button(td, 'stacks', function () { stacks(w.pid); });
    }
    tr.appendChild(td);
    body.appendChild(tr);
  });
  var list = document.getElementById('statuses');
  list.innerHTML = '';
  state.statuses.forEach(function (s) {
    var li = document.createElement('li');
    li.textContent = s;
    list.appendChild(li);
  });
  renderDebug(state.debug);
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}
['markup', 'markdown', 'restart'].forEach(function (action) {
  document.getElementById(action).onclick = function () { control('/api/' + action); };
});
document.getElementById('debug-fresh').onclick = function () {
  control('/api/debug?fresh=1', renderDebug);
};
document.getElementById('debug-end').onclick = function () {
  control('/api/debug/end', function () { renderDebug(null); });
};
fetch('/api/state').then(function (r) { return r.json(); }).then(render);
var events = new EventSource('/api/events');
events.onmessage = function (e) { render(JSON.parse(e.data)); };
</script>
</body>
</html>
)HTML";

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_PAGE_H_

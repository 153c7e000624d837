// The monitor page served at / and /debug: plain HTML, CSS and JavaScript,
// no build step. It renders /api/state and follows /api/events; its buttons
// POST with the control token (monitor_routes.h), which MonitorServer puts
// in place of kMonitorPageTokenPlaceholder (or an empty string, for a Host
// that may not have it: then the buttons say so).
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
</style>
</head>
<body>
<h1>cluster2 <span id="name"></span></h1>
<p>ECV: <span id="ecv">?</span> <span id="ecv-by"></span>
  <button id="markup">markUp</button><button id="markdown">markDown</button>
  <button id="restart">rolling restart</button> <span id="error"></span></p>
<table id="workers">
  <thead><tr><th>slot</th><th>pid</th><th>state</th><th>uptime</th><th>restarts</th>
  <th>rss</th><th>cpu</th><th>requests</th><th>lag</th><th>note</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<h2>statuses</h2>
<ul id="statuses"></ul>
<p id="updated"></p>
<script>
var token = document.querySelector('meta[name="cluster2-token"]').content;
// A state change: POST with the control token; a refusal is shown.
function control(url) {
  if (!token) {
    document.getElementById('error').textContent =
        'open this page by IP address, localhost or the host name to use the buttons';
    return;
  }
  fetch(url, {method: 'POST', headers: {'X-Cluster2-Token': token}}).then(function (r) {
    return r.text().then(function (text) {
      document.getElementById('error').textContent = r.ok ? '' : r.status + ' ' + text;
    });
  });
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
    [w.id, w.pid || '-', w.state, secs(w.uptime), w.restarts, mib(w.rss), secs(w.cpu),
     w.requests, secs(w.lag), w.note].forEach(function (v, i) {
      var td = document.createElement('td');
      td.textContent = v;
      if (i === 2) td.className = 'state-' + w.state;
      tr.appendChild(td);
    });
    var td = document.createElement('td');
    if (w.pid) {
      var b = document.createElement('button');
      b.textContent = 'recycle';
      b.onclick = function () { control('/api/recycle?pid=' + w.pid); };
      td.appendChild(b);
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
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}
['markup', 'markdown', 'restart'].forEach(function (action) {
  document.getElementById(action).onclick = function () { control('/api/' + action); };
});
fetch('/api/state').then(function (r) { return r.json(); }).then(render);
var events = new EventSource('/api/events');
events.onmessage = function (e) { render(JSON.parse(e.data)); };
</script>
</body>
</html>
)HTML";

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_PAGE_H_

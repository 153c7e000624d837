'use strict';
// Figures of this process for heartbeats, from Node and /proc (Linux).

const fs = require('fs');

// Returns {rssBytes, cpuMs, openFds, threads, uptimeMs}; openFds and threads
// are 0 where /proc cannot tell.
function processStats() {
  const cpu = process.cpuUsage();  // microseconds
  return {
    rssBytes: process.memoryUsage.rss ? process.memoryUsage.rss() : process.memoryUsage().rss,
    cpuMs: (cpu.user + cpu.system) / 1000,
    openFds: countOpenFds(),
    threads: countThreads(),
    uptimeMs: process.uptime() * 1000,
  };
}

function countOpenFds() {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1;  // minus readdir's own
  } catch (_) {
    return 0;
  }
}

function countThreads() {
  try {
    const match = /^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch (_) {
    return 0;
  }
}

module.exports = {processStats};

'use strict';
// `npm test`: runs every test/*.test.js with node's test runner and its TAP
// output (asked for where --test-reporter exists, the default before), so
// CI can count the "# pass N" / "# fail N" lines. Exits with the runner's code.
const {spawn} = require('child_process');
const fs = require('fs');
const path = require('path');

const [major, minor] = process.versions.node.split('.').map(Number);
const files = fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()
    .map((f) => path.join(__dirname, f));
const only = process.argv.slice(2);  // npm test -- emitter  (files whose name contains it)
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
const args = ['--test'];
// --test-reporter exists since 18.15 / 19.6; older runners only write TAP.
if (major > 19 || (major === 19 && minor >= 6) || (major === 18 && minor >= 15)) {
  args.push('--test-reporter=tap');
}
// One file at a time: the integration files each run a cluster.
if (major > 20 || (major === 20 && minor >= 10)) {
  args.push('--test-concurrency=1');
}
const child = spawn(process.execPath, [...args, ...selected], {stdio: 'inherit'});
child.on('exit', (code, signal) => process.exit(code === null ? 1 : code));

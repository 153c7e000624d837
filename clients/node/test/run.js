'use strict';
// `npm test`: runs every test/*.test.js with node's test runner and its TAP
// output (node 18's default reporter is TAP; node >= 20 is asked for it), so
// CI can count the "# pass N" / "# fail N" lines. Exits with the runner's code.
const {spawn} = require('child_process');
const fs = require('fs');
const path = require('path');

const major = Number(process.versions.node.split('.')[0]);
const files = fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()
    .map((f) => path.join(__dirname, f));
const only = process.argv.slice(2);  // npm test -- emitter  (files whose name contains it)
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
const args = ['--test'];
if (major >= 20) args.push('--test-reporter=tap');
// One file at a time: the integration files each run a cluster.
if (major >= 21 || (major === 20 && Number(process.versions.node.split('.')[1]) >= 10)) {
  args.push('--test-concurrency=1');
}
const child = spawn(process.execPath, [...args, ...selected], {stdio: 'inherit'});
child.on('exit', (code, signal) => process.exit(code === null ? 1 : code));

// Starts a real `strata serve` (the binary named by STRATA_BIN) on loopback
// ports chosen by the OS, and runs its CLI as the bootstrap admin.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const bin = process.env.STRATA_BIN;
if (!bin) throw new Error('STRATA_BIN names the strata binary to test');

async function start(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `strata-node-${name}-`));
  const child = spawn(bin, ['serve', '--http-addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0', '--data-dir', dir], {
    env: { ...process.env, STRATA_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = readline.createInterface({ input: child.stderr });
  const addrs = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('strata did not report its addresses')), 60000);
    lines.on('line', (line) => {
      const m = line.match(/serving HTTP on (\S+) and RocketMQ gRPC on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ http: m[1], grpc: m[2] });
      }
    });
  });
  const cli = (...args) => execFileSync(bin, args, {
    env: { ...process.env, STRATA_SERVER: addrs.http, STRATA_CREDENTIALS_FILE: path.join(dir, 'admin-credentials') },
    encoding: 'utf8',
  });
  const key = (tenant, role) => {
    try { cli('tenant', 'create', tenant); } catch (_) { /* exists */ }
    const out = cli('key', 'create', '--tenant', tenant, '--role', role);
    const field = (n) => out.split('\n').find((l) => l.trim().startsWith(`${n}=`)).trim().slice(n.length + 1);
    return { accessKey: field('access_key'), accessSecret: field('secret_key') };
  };
  // Publishes one message per line to one queue through the CLI.
  const publishTo = (tenant, topic, queue, lines) => execFileSync(bin, ['--tenant', tenant, 'produce', topic, '--queue', String(queue)], {
    env: { ...process.env, STRATA_SERVER: addrs.http, STRATA_CREDENTIALS_FILE: path.join(dir, 'admin-credentials') },
    input: lines.map((l) => `${l}\n`).join(''),
    encoding: 'utf8',
  });
  const consumeAll = (tenant, topic) => cli('--tenant', tenant, 'consume', topic, '--from', 'earliest', '--json')
    .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  const stop = () => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { ...addrs, cli, key, publishTo, consumeAll, stop };
}

module.exports = { start };

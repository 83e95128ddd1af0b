// Small helpers for the worker tests: free loopback ports, child processes that stop with the
// test, waiting for an HTTP endpoint.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A free TCP port on 127.0.0.1 (or on `host`, e.g. '::1'). */
export async function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawns a long-running child, keeping its output lines; `stop()` ends it (and waits). */
export function startChild(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const lines = [];
  const keep = (buf) => {
    for (const l of buf.toString().split('\n')) if (l) lines.push(l);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  const done = new Promise((resolve) => child.on('exit', () => { exited = true; resolve(); }));
  return {
    child,
    lines,
    get exited() { return exited; },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await done;
        clearTimeout(t);
      }
    },
  };
}

/** Waits until `url` answers (any HTTP status) or the time is up. */
export async function waitHttp(url, { timeoutMs = 30000, proc } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return r;
    } catch (e) {
      if (proc?.exited) throw new Error(`${url}: process exited: ${proc.lines.slice(-20).join('\n')}`);
      if (Date.now() > end) throw new Error(`${url} not up after ${timeoutMs} ms: ${e}`);
      await sleep(50);
    }
  }
}

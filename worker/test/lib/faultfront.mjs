// The fault-injecting front (kiln_tests::fault_front, example fault_front) as a child process:
// before a registry on loopback, it answers a share of the GET/HEAD requests with transient
// faults (503/502/429 with Retry-After: 0, resets) and counts them.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');

/**
 * Starts the front before 127.0.0.1:`upstreamPort`, faulting `percent` % (seed: the example's
 * default, whose first two requests are faulted). Resolves to { port, host, seed, stats(), stop() };
 * stats() resolves to the counters ({faults, cuts, ...}).
 */
export async function startFaultFront(upstreamPort, percent, seed) {
  const args = [String(upstreamPort), String(percent)];
  if (seed !== undefined) args.push(String(seed));
  const child = spawn(path.join(TARGET, 'debug/examples/fault_front'), args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => { const w = waiting.shift(); if (w) w.resolve(JSON.parse(l)); });
  const exited = new Promise((resolve) => child.on('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`fault_front exited (${code})`));
    resolve();
  }));
  const next = () => new Promise((resolve, reject) => { waiting.push({ resolve, reject }); });
  const first = await next();
  return {
    ...first,
    async stats() { child.stdin.write('stats\n'); return next(); },
    async stop() { child.stdin.end(); const t = setTimeout(() => child.kill('SIGKILL'), 3000); await exited; clearTimeout(t); },
  };
}


// Starts kiln's worker in bare workerd through scripts/run-worker.sh (which execs workerd, so
// the child's pid is workerd's).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startChild, waitHttp } from './procs.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** env: KILN_* configuration. Returns { url, port, pid, lines, stop }. */
export async function startWorker(env) {
  const port = await freePort();
  const proc = startChild(path.join(ROOT, 'scripts/run-worker.sh'), [String(port)], {
    env: {
      ...process.env,
      KILN_WORKER_NO_BUILD: process.env.KILN_WORKER_NO_BUILD ?? '1',
      // The worker's own placeholder page, whether or not the web app has been built.
      KILN_ASSETS_DIR: path.join(ROOT, 'worker/public'),
      // Tests that are not about authentication call the conversion endpoints without a
      // token (development mode); security.test.mjs configures KILN_API_TOKENS.
      KILN_EDGE_ANONYMOUS: env.KILN_API_TOKENS ? '' : '1',
      // High rate limits unless a test sets its own (security.test.mjs).
      KILN_RATE_LIMIT_CONVERT_PER_MIN: '100000',
      KILN_RATE_LIMIT_VERIFY_PER_MIN: '100000',
      KILN_RATE_LIMIT_PROXY_PER_MIN: '1000000',
      ...env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`, { proc, timeoutMs: 60000 });
  return { url, port, pid: proc.child.pid, lines: proc.lines, proc, stop: () => proc.stop() };
}

/** Resident set size of a process in KiB (from /proc). */
export async function rssKiB(pid) {
  const fs = await import('node:fs');
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

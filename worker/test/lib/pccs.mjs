// A loopback stand-in for a PCCS (Intel's PCCS v4 API, as kiln_engine::attest::pccs reads
// it): serves one dcap-qvl QuoteCollateralV3 JSON object (e.g. mint_quote's `collateral`,
// under its TEST root) at the four endpoints, issuer chains URL-encoded in their headers.
import http from 'node:http';

const V4 = '/sgx/certification/v4';

/**
 * collateral: the QuoteCollateralV3 object (byte fields as hex, as dcap-qvl writes them).
 * Returns { url, requests (paths seen), state: { fail } (true: every answer a 500), stop }.
 */
export async function startPccs(collateral) {
  const enc = (pem) => encodeURIComponent(pem);
  const requests = [];
  const state = { fail: false };
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    if (state.fail) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('PCCS stand-in: failing on purpose');
      return;
    }
    const u = new URL(req.url, 'http://pccs');
    let headers;
    let body;
    if (req.method !== 'GET') {
      res.writeHead(405);
      res.end();
      return;
    } else if (u.pathname === `${V4}/pckcrl` && u.searchParams.get('encoding') === 'der') {
      headers = { 'SGX-PCK-CRL-Issuer-Chain': enc(collateral.pck_crl_issuer_chain) };
      body = Buffer.from(collateral.pck_crl, 'hex');
    } else if (u.pathname === `${V4}/tcb` && u.searchParams.get('fmspc')) {
      headers = { 'TCB-Info-Issuer-Chain': enc(collateral.tcb_info_issuer_chain), 'content-type': 'application/json' };
      body = `{"tcbInfo":${collateral.tcb_info},"signature":"${collateral.tcb_info_signature}"}`;
    } else if (u.pathname === `${V4}/qe/identity`) {
      headers = {
        'SGX-Enclave-Identity-Issuer-Chain': enc(collateral.qe_identity_issuer_chain),
        'content-type': 'application/json',
      };
      body = `{"enclaveIdentity":${collateral.qe_identity},"signature":"${collateral.qe_identity_signature}"}`;
    } else if (u.pathname === `${V4}/rootcacrl`) {
      // A PCCS answers the root CA CRL in hex.
      headers = {};
      body = collateral.root_ca_crl;
    } else {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, headers);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    state,
    stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

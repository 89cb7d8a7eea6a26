// Browser test of the origin policy, in real Chromium: a page from another origin (served by
// this script on another port of the same address: another origin, the same site, and the same
// local address space, so Chromium's private-network rules do not stop it first) tries what a malicious page opened in the user's browser would — read the camera
// list, open the signalling WebSocket, take over the push source NAME with a real WHIP offer —
// and a domain re-pointed at the server (DNS rebinding: `--host-resolver-rules`) asks for the
// camera list under its own name. Everything must fail; the server's own page keeps working.
//
//   node web/tests/foreign_origin.mjs http://127.0.0.1:8350/ NAME
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { authHeaders, fail, openPage } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const name = process.argv[3] || 'avatar';
const port = new URL(base).port;
const elsewhere = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>elsewhere</title>');
});
await new Promise((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
const foreign = `http://127.0.0.1:${elsewhere.address().port}/`;
const camera = async () =>
  (await fetch(new URL(`/api/cameras/${name}`, base), { headers: authHeaders })).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    `--host-resolver-rules=MAP rebound.test 127.0.0.1`,
  ],
});
try {
  // Logged in first: the attack runs in the browser of a user who holds a session.
  const page = await openPage(browser);
  await page.goto(`${foreign}attack.html`);
  const attack = await page.evaluate(async ({ base, name }) => {
    const result = {};
    try {
      const r = await fetch(new URL('/api/cameras', base));
      result.read = `answered ${r.status}: ${(await r.text()).slice(0, 80)}`;
    } catch (e) {
      result.read = 'refused'; result.read_error = String(e);
    }
    result.socket = await new Promise((resolve) => {
      const ws = new WebSocket(new URL('/api/ws', base).toString().replace('http', 'ws'));
      ws.onopen = () => { ws.close(); resolve('opened'); };
      ws.onerror = () => resolve('refused');
      setTimeout(() => resolve('no answer'), 10000);
    });
    const pc = new RTCPeerConnection();
    const canvas = document.createElement('canvas');
    canvas.getContext('2d').fillRect(0, 0, 10, 10);
    for (const track of canvas.captureStream(5).getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    try {
      const r = await fetch(new URL(`/api/whip/${name}`, base), {
        method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp,
      });
      result.whip = `answered ${r.status}`;
    } catch (e) {
      result.whip = 'refused';
    }
    pc.close();
    return result;
  }, { base, name });

  // DNS rebinding: the attacker's own name, resolved to the server.
  const rebound = await page.goto(`http://rebound.test:${port}/api/cameras`);
  const reboundStatus = rebound ? rebound.status() : 0;

  // The server's own page still reads its API and opens its socket.
  await page.goto(base);
  const own = await page.evaluate(async () => {
    const cameras = (await fetch('/api/cameras')).status;
    const socket = await new Promise((resolve) => {
      const ws = new WebSocket(location.origin.replace('http', 'ws') + '/api/ws');
      ws.onopen = () => { ws.close(); resolve('opened'); };
      ws.onerror = () => resolve('refused');
      setTimeout(() => resolve('no answer'), 10000);
    });
    return { cameras, socket };
  });

  const state = (await camera()).state;
  const result = { ok: true, attack, rebound_status: reboundStatus, own, push_state: state };
  if (attack.read !== 'refused') fail(`a foreign page read the camera list: ${attack.read}`, result);
  if (attack.socket !== 'refused') fail(`a foreign page's WebSocket: ${attack.socket}`, result);
  if (attack.whip !== 'refused') fail(`a foreign page's WHIP offer: ${attack.whip}`, result);
  if (state !== 'waiting') fail(`the push source was taken over: ${state}`, result);
  if (reboundStatus !== 403) fail(`a rebound host got ${reboundStatus}`, result);
  if (own.cameras !== 200 || own.socket !== 'opened') fail('the server\'s own page was refused', result);
  console.log(JSON.stringify(result));
} catch (e) {
  fail(`foreign-origin test: ${e.stack || e}`);
} finally {
  await browser.close();
  elsewhere.close();
}

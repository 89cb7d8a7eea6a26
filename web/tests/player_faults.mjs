// The lockstep player against a bad stream, in real Chromium. The page is served through a proxy
// of this script's own that reads the media sockets' WebSocket frames and, on one camera, sends
// a truncated frame message, one of an unknown kind, a header that is not JSON, a header naming
// a codec the browser lacks, and drops the connection. Each time the card says what happened
// and the player reconnects, with a backoff that grows while the faults go on, then plays again;
// the other camera plays on undisturbed (one connection, no error, pictures all along).
//
//   node web/tests/player_faults.mjs http://127.0.0.1:8350/ [artifacts-dir] [faulty] [other]
//
// Prints one JSON object (what each fault showed) and exits 0, or prints why and exits 1.

import { fail, launchChromium, watchedPage, waitForPlaying } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const artifacts = process.argv[3] || 'artifacts';
const faulty = process.argv[4] || 'demo-clean';
const other = process.argv[5] || 'demo-drifting';

/**
 * A TCP proxy to the server. Connections that open `/api/media/NAME` have the server's frames
 * parsed (RFC 6455 §5.2; a server's frames are unmasked) and the next fault armed for NAME
 * applied to them; everything else passes byte for byte.
 */
async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const armed = new Map(); // camera → faults to apply, in order
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    let firstLine = '';
    let camera = null;
    client.on('data', (chunk) => {
      if (firstLine === '') {
        firstLine = chunk.toString('latin1').split('\r\n')[0];
        const m = /^GET \/api\/media\/([^ ?]+)/.exec(firstLine);
        if (m) camera = decodeURIComponent(m[1]);
      }
      upstream.write(chunk);
    });
    let handshake = true;
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk) => {
      if (camera === null) { client.write(chunk); return; }
      pending = Buffer.concat([pending, chunk]);
      if (handshake) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        client.write(pending.subarray(0, end + 4));
        pending = pending.subarray(end + 4);
        handshake = false;
      }
      for (;;) {
        const frame = parseFrame(pending);
        if (!frame) return;
        pending = pending.subarray(frame.size);
        const out = applyFault(armed.get(camera) || [], frame, () => {
          client.destroy();
          upstream.destroy();
        });
        if (out) client.write(out);
      }
    });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    arm(name, ...faults) { armed.set(name, [...(armed.get(name) || []), ...faults]); },
    close() { server.close(); },
  };
}

/** One whole frame at the start of `buf`: {first, opcode, payload, raw, size}, or null. */
function parseFrame(buf) {
  if (buf.length < 2) return null;
  let length = buf[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  if (buf.length < offset + length) return null;
  const size = offset + length;
  return { first: buf[0], opcode: buf[0] & 0x0f, payload: buf.subarray(offset, size), raw: buf.subarray(0, size), size };
}

function encodeFrame(first, payload) {
  let head;
  if (payload.length < 126) head = Buffer.from([first, payload.length]);
  else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = first; head[1] = 126; head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = first; head[1] = 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([head, payload]);
}

/** The frame to send on (possibly rewritten by the first armed fault it fits), or null. */
function applyFault(faults, frame, drop) {
  const fault = faults[0];
  const text = frame.opcode === 1;
  const binary = frame.opcode === 2;
  let payload = frame.payload;
  if (fault === 'truncate' && binary) payload = payload.subarray(0, 5);
  else if (fault === 'unknown-kind' && binary) payload = Buffer.concat([Buffer.from([9]), payload.subarray(1)]);
  else if (fault === 'drop' && (binary || text)) { faults.shift(); drop(); return null; }
  else if (fault === 'not-json' && text) payload = Buffer.from('{"type": "header", "video": ');
  else if (fault?.startsWith('codec:') && text) {
    const header = JSON.parse(payload.toString());
    header.video.codec = fault.slice('codec:'.length);
    payload = Buffer.from(JSON.stringify(header));
  } else return frame.raw;
  faults.shift();
  return encodeFrame(frame.first, payload);
}

mkdirSync(artifacts, { recursive: true });
const proxy = await startProxy(base);
const browser = await launchChromium();
const result = { ok: true, faulty, other, faults: [] };
try {
  const { page, consoleErrors } = await watchedPage(browser);
  result.console_errors = consoleErrors;
  await page.goto(new URL('/?player=lockstep', proxy.url).toString());
  if (!await waitForPlaying(page, [faulty, other])) {
    await page.screenshot({ path: join(artifacts, 'player-faults-failed.png') });
    fail('the cameras did not start playing through the proxy', result);
  }
  // The sound on, as a user would: the player's clock is then the audio it plays.
  await page.click(`.card[data-camera="${faulty}"] .sound`);
  // Everything the faulty card says, as it says it.
  await page.evaluate((n) => {
    const card = document.querySelector(`.card[data-camera="${n}"]`);
    window.cardSaid = [];
    for (const el of [card.querySelector('.error'), card.querySelector('.veil-text')]) {
      new MutationObserver(() => {
        if (el.textContent) window.cardSaid.push(el.textContent);
      }).observe(el, { childList: true, characterData: true, subtree: true });
    }
  }, faulty);
  const stats = (name) => page.evaluate((n) => window.lockstep.cards.get(n).player.stats(), name);
  // The worker's counts reach the page once a second.
  await page.waitForFunction((names) => names.every((n) => window.lockstep.cards.get(n).player.stats().connects >= 1),
    [faulty, other], { timeout: 10000 });
  const otherBefore = await stats(other);
  const started = Date.now();
  // A codec this browser cannot decode: H.265 where it has no decoder (as in headless Linux
  // Chromium), else a made-up profile.
  const hevc = 'hvc1.1.6.L93.B0';
  const lacking = await page.evaluate(async (c) => !(await VideoDecoder.isConfigSupported({ codec: c })
    .then((s) => s.supported, () => false)), hevc) ? hevc : 'avc1.FF0033';

  // [faults armed, what the card must say, the backoff it must announce]
  const steps = [
    [['truncate'], 'a frame message of 5 bytes (at least 10)', 'again in 0.5 s'],
    [['unknown-kind'], 'a frame message of unknown kind 9', 'again in 1 s'],
    [['drop', 'not-json'], 'a text message that is not JSON', 'again in 4 s'],
    [['drop'], 'the connection closed (code 1006)', null],
    [['drop', `codec:${lacking}`], `this browser cannot decode ${lacking} video`, null],
  ];
  for (const [faults, says, backoff] of steps) {
    const before = await stats(faulty);
    const saidBefore = await page.evaluate(() => window.cardSaid.length);
    proxy.arm(faulty, ...faults);
    const step = { faults, says };
    try {
      await page.waitForFunction(([from, text]) => window.cardSaid.slice(from).some((t) => t.includes(text)),
        [saidBefore, says], { timeout: 20000 });
      if (backoff) {
        await page.waitForFunction(([from, text]) => window.cardSaid.slice(from).some((t) => t.includes(text)),
          [saidBefore, backoff], { timeout: 20000 });
      }
    } catch (e) {
      step.said = await page.evaluate((from) => window.cardSaid.slice(from), saidBefore);
      result.faults.push(step);
      await page.screenshot({ path: join(artifacts, 'player-faults-failed.png') });
      fail(`after ${faults.join(' + ')} the card did not say "${says}"${backoff ? ` nor "${backoff}"` : ''}`, result);
    }
    // Back to playing: a new connection, and pictures drawn again; for a lacking codec, the
    // sound plays on the new connection and no picture is drawn.
    const pictures = !faults.some((f) => f.startsWith('codec:'));
    const recovered = await page.waitForFunction(([n, connects, drawn, wantPictures]) => {
      const s = window.lockstep.cards.get(n).player.stats();
      return s.connects > connects && (wantPictures ? s.drawn > drawn + 15 : s.clock === 'audio');
    }, [faulty, before.connects, before.drawn, pictures], { timeout: 30000 }).then(() => true, () => false);
    if (recovered && !pictures) {
      const drawn = (await stats(faulty)).drawn;
      await page.waitForTimeout(2000);
      step.drawn_without_decoder = (await stats(faulty)).drawn - drawn;
    }
    step.said = await page.evaluate((from) => window.cardSaid.slice(from), saidBefore);
    const after = await stats(faulty);
    step.connects = after.connects - before.connects;
    step.bad_messages = after.bad_messages;
    result.faults.push(step);
    if (!recovered) fail(`after ${faults.join(' + ')} the player did not play again`, result);
    if (step.drawn_without_decoder) fail('pictures drawn without a video decoder', result);
  }
  await page.screenshot({ path: join(artifacts, 'player-faults.png') });
  const lastError = await page.evaluate((n) => {
    const e = document.querySelector(`.card[data-camera="${n}"] .error`);
    return e.hidden ? null : e.textContent;
  }, faulty);
  if (!lastError || !lastError.includes('cannot decode')) {
    fail(`the card no longer says why there is no picture (it shows ${JSON.stringify(lastError)})`, result);
  }

  // The other camera: the same connection all along, no error, pictures all the while.
  const otherAfter = await stats(other);
  const secs = (Date.now() - started) / 1000;
  result.other_camera = {
    secs,
    connects: otherAfter.connects - otherBefore.connects,
    drawn: otherAfter.drawn - otherBefore.drawn,
    bad_messages: otherAfter.bad_messages,
  };
  const otherError = await page.evaluate((n) => !document.querySelector(`.card[data-camera="${n}"] .error`).hidden, other);
  if (result.other_camera.connects !== 0 || otherAfter.bad_messages !== 0 || otherError) {
    fail(`the other camera was disturbed`, result);
  }
  if (result.other_camera.drawn < secs * 15) fail(`the other camera drew ${result.other_camera.drawn} pictures in ${secs} s`, result);
  const uncaught = consoleErrors.filter((e) => !/WebSocket|ERR_|Failed to load/.test(e));
  if (uncaught.length) fail('errors in the console', result);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  proxy.close();
}

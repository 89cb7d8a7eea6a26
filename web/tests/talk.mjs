// Browser test of push-to-talk, in real Chromium with a fake microphone that plays a file: the
// page sets the camera's talk session up before the first press (the microphone is allowed),
// holding the button sends the microphone to the camera, releasing it stops. The speaker's side
// is checked by the Rust test that runs this (crates/server/tests/talk.rs).
//
//   node web/tests/talk.mjs http://127.0.0.1:8350/ CAMERA HOLD_MS
//
// Prints one JSON object (with `pressed_unix_ms`, `released_unix_ms`) and exits 0, or prints
// why and exits 1.

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, launchChromium, openPage } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const camera = process.argv[3] || 'door';
const holdMs = Number(process.argv[4] || 2500);

/**
 * A voice stand-in: a 1 kHz tone whose loudness rises and falls three times a second (syllables),
 * 48 kHz mono WAV. A steady tone would be taken for noise by the browser's noise suppression.
 */
function speechLikeWav(seconds) {
  const rate = 48000;
  const n = rate * seconds;
  const data = Buffer.alloc(44 + n * 2);
  data.write('RIFF', 0); data.writeUInt32LE(36 + n * 2, 4); data.write('WAVE', 8);
  data.write('fmt ', 12); data.writeUInt32LE(16, 16); data.writeUInt16LE(1, 20);
  data.writeUInt16LE(1, 22); data.writeUInt32LE(rate, 24); data.writeUInt32LE(rate * 2, 28);
  data.writeUInt16LE(2, 32); data.writeUInt16LE(16, 34);
  data.write('data', 36); data.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const envelope = 0.5 - 0.5 * Math.cos(2 * Math.PI * 3 * t);
    data.writeInt16LE(Math.round(16000 * envelope * Math.sin(2 * Math.PI * 1000 * t)), 44 + i * 2);
  }
  return data;
}

const wav = join(mkdtempSync(join(tmpdir(), 'lockstep-talk-')), 'voice.wav');
writeFileSync(wav, speechLikeWav(10));
const browser = await launchChromium([
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}`,
]);
const result = { ok: true };
try {
  const context = await browser.newContext({ permissions: ['microphone'] });
  const page = await openPage(context);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base);
  const button = `.card[data-camera="${camera}"] button.talk`;
  await page.waitForSelector(`${button}:not([hidden]):not([disabled])`, { timeout: 20000 });
  // Set up before any press: the peer is connected and sends nothing.
  await page.waitForFunction((name) => {
    const pc = window.lockstep.talk(name).pc;
    return pc && pc.connectionState === 'connected';
  }, camera, { timeout: 15000 });
  result.connected_before_press = true;
  const box = await page.locator(button).boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  result.pressed_unix_ms = Date.now();
  await page.mouse.down();
  await page.waitForSelector(`${button}.talking`, { timeout: 5000 });
  result.talking_after_ms = Date.now() - result.pressed_unix_ms;
  await page.waitForTimeout(holdMs);
  await page.mouse.up();
  result.released_unix_ms = Date.now();
  await page.waitForSelector(`${button}:not(.talking)`, { timeout: 5000 });
  result.sent = await page.evaluate(async (name) => {
    let packets = 0;
    (await window.lockstep.talk(name).pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp') packets += r.packetsSent;
    });
    return packets;
  }, camera);
  // Nothing goes out once released.
  await page.waitForTimeout(500);
  const later = await page.evaluate(async (name) => {
    let packets = 0;
    (await window.lockstep.talk(name).pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp') packets += r.packetsSent;
    });
    return packets;
  }, camera);
  result.sent_after_release = later - result.sent;
  result.note = await page.textContent(`.card[data-camera="${camera}"] .talk-note`);
  if (errors.length) fail(`page errors: ${errors.join('; ')}`, result);
  if (result.sent < holdMs / 20 / 2) fail(`only ${result.sent} packets sent while held`, result);
  if (result.sent_after_release > 3) fail('packets went out after the release', result);
} catch (e) {
  fail(e.message, result);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

// Browser test of push-to-talk, in real Chromium with a fake microphone that plays a file: the
// page sets the camera's talk session up before the first press (the microphone is allowed),
// holding the button sends the microphone to the camera, releasing it stops. The speaker's side
// is checked by the Rust test that runs this (crates/server/tests/talk.rs).
//
//   node web/tests/talk.mjs http://127.0.0.1:8350/ CAMERA HOLD_MS [TAP_FILE]
//
// Prints one JSON object (with `pressed_unix_ms`, `released_unix_ms`, `tap_chunks`) and exits
// 0, or prints why and exits 1. TAP_FILE gets what the microphone track carried while the
// button was held, as the browser sent it: a JSON array of 10 ms chunks, each with its capture
// instant from its own timestamp (`unix_ms`), `rate` and `pcm` (16-bit samples).

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, launchChromium, openPage } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const camera = process.argv[3] || 'door';
const holdMs = Number(process.argv[4] || 2500);
const tapFile = process.argv[5] || null;

/**
 * A voice stand-in, 48 kHz mono WAV: syllables of 80–250 ms (half of them silent), each a
 * harmonic series on a gliding pitch of 100–220 Hz, harmonics kept under 3.4 kHz (what reaches
 * an 8 kHz speaker). A steady tone would be taken for noise by the browser's noise suppression,
 * and its period would make any alignment look right.
 */
function voiceWav(seconds) {
  const rate = 48000;
  const n = rate * seconds;
  const data = Buffer.alloc(44 + n * 2);
  data.write('RIFF', 0); data.writeUInt32LE(36 + n * 2, 4); data.write('WAVE', 8);
  data.write('fmt ', 12); data.writeUInt32LE(16, 16); data.writeUInt16LE(1, 20);
  data.writeUInt16LE(1, 22); data.writeUInt32LE(rate, 24); data.writeUInt32LE(rate * 2, 28);
  data.writeUInt16LE(2, 32); data.writeUInt16LE(16, 34);
  data.write('data', 36); data.writeUInt32LE(n * 2, 40);
  let seed = 0x5eed;
  const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  let left = 0; let loud = false; let pitch = 140; let glide = 0; let phase = 0;
  for (let i = 0; i < n; i++) {
    if (left === 0) {
      left = Math.round(rate * (0.08 + 0.17 * random()));
      loud = random() > 0.5;
      pitch = 100 + 120 * random();
      glide = 400 * random() - 200;
    }
    left -= 1;
    let sample = 0;
    if (loud) {
      pitch = Math.min(220, Math.max(100, pitch + glide / rate));
      phase += pitch / rate;
      for (let k = 1; k * pitch < 3400; k++) sample += Math.sin(2 * Math.PI * k * phase) / k;
    }
    data.writeInt16LE(Math.round(4000 * sample), 44 + i * 2);
  }
  return data;
}

/**
 * Before the page's scripts: the microphone track the page gets is also read here (a clone,
 * through MediaStreamTrackProcessor) while `window.lockstepTap.on` is set — what the browser
 * sends, after its echo cancellation, noise suppression and gain. Each chunk's timestamp is its
 * capture instant on the performance clock (µs), checked on this Chromium against
 * `performance.now()` at the read: within 1–2 ms.
 */
function tapMicrophone() {
  const tap = { on: false, chunks: [] };
  window.lockstepTap = tap;
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    const track = stream.getAudioTracks()[0];
    if (track) {
      const reader = new MediaStreamTrackProcessor({ track: track.clone() }).readable.getReader();
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          if (tap.on) {
            const pcm = new Float32Array(value.numberOfFrames);
            value.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
            tap.chunks.push({
              unix_ms: performance.timeOrigin + value.timestamp / 1000,
              rate: value.sampleRate,
              pcm: Array.from(pcm, (x) => Math.round(x * 32767)),
            });
          }
          value.close();
        }
      })();
    }
    return stream;
  };
}

const wav = join(mkdtempSync(join(tmpdir(), 'lockstep-talk-')), 'voice.wav');
writeFileSync(wav, voiceWav(10));
const browser = await launchChromium([
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}`,
]);
const result = { ok: true };
try {
  const context = await browser.newContext({ permissions: ['microphone'] });
  const page = await openPage(context);
  await page.addInitScript(tapMicrophone);
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
  await page.evaluate(() => { window.lockstepTap.on = true; });
  result.pressed_unix_ms = Date.now();
  await page.mouse.down();
  await page.waitForSelector(`${button}.talking`, { timeout: 5000 });
  result.talking_after_ms = Date.now() - result.pressed_unix_ms;
  await page.waitForTimeout(holdMs);
  await page.mouse.up();
  result.released_unix_ms = Date.now();
  await page.waitForSelector(`${button}:not(.talking)`, { timeout: 5000 });
  const tap = await page.evaluate(() => {
    const t = window.lockstepTap;
    t.on = false;
    return t.chunks;
  });
  result.tap_chunks = tap.length;
  if (tapFile) writeFileSync(tapFile, JSON.stringify(tap));
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
  if (tap.length < holdMs / 10 / 2) fail(`the tap read ${tap.length} chunks`, result);
  if (result.sent < holdMs / 20 / 2) fail(`only ${result.sent} packets sent while held`, result);
  if (result.sent_after_release > 3) fail('packets went out after the release', result);
} catch (e) {
  fail(e.message, result);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

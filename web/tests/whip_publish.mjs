// Browser test of WHIP ingest, in real Chromium: a page publishes a synthetic stream (a canvas
// that flashes once a second, a 1 kHz tone gated on the same seconds) to the push source NAME
// with web/publish.js; lockstep re-serves it, and the same page's UI plays it back over its own
// WebRTC viewer: frames decoded and audio energy > 0, and the API shows the source live with
// H.264 and Opus. Then the publisher stops (WHIP DELETE) and the source waits again.
//
//   node web/tests/whip_publish.mjs http://127.0.0.1:8350/ NAME [artifacts-dir]
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { authHeaders, fail, launchChromium, openPage, waitForPlaying } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const name = process.argv[3] || 'avatar';
const artifacts = process.argv[4] || 'artifacts';

const camera = async () =>
  (await fetch(new URL(`/api/cameras/${name}`, base), { headers: authHeaders })).json();

mkdirSync(artifacts, { recursive: true });
const browser = await launchChromium();
try {
  const page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  const published = await page.evaluate(async (n) => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    const ctx = canvas.getContext('2d');
    const draw = () => {
      const flash = (performance.now() % 1000) < 100;
      ctx.fillStyle = flash ? '#eee' : '#282828';
      ctx.fillRect(0, 0, 320, 240);
      ctx.fillStyle = '#c33';
      ctx.fillRect((performance.now() / 10) % 300, 100, 20, 40); // something moves
      requestAnimationFrame(draw);
    };
    draw();
    const audio = new AudioContext({ sampleRate: 48000 });
    const tone = audio.createOscillator();
    tone.frequency.value = 1000;
    const gate = audio.createGain();
    gate.gain.value = 0;
    for (let s = 0; s < 120; s++) {
      gate.gain.setValueAtTime(0.5, audio.currentTime + s);
      gate.gain.setValueAtTime(0, audio.currentTime + s + 0.1);
    }
    const out = audio.createMediaStreamDestination();
    tone.connect(gate).connect(out);
    tone.start();
    await audio.resume();
    const stream = new MediaStream([...canvas.captureStream(30).getVideoTracks(), ...out.stream.getAudioTracks()]);
    const { publish } = await import('/publish.js');
    try {
      window.publisher = await publish(new URL(`/api/whip/${n}`, location.href).toString(), stream);
      return { ok: true };
    } catch (e) {
      return { ok: false, error: e.message };
    }
  }, name);
  if (!published.ok) fail(`the WHIP publish was refused: ${published.error}`);

  // The UI plays the re-served source like any camera.
  if (!await waitForPlaying(page, name)) {
    await page.screenshot({ path: join(artifacts, 'whip-failed.png') });
    fail(`${name}: the published stream did not play back`, { camera: await camera() });
  }
  const report = await page.evaluate((n) => window.lockstep.measure(n, 5000), name);
  const stats = await page.evaluate((n) => window.lockstep.stats(n), name);
  const api = await camera();
  await page.screenshot({ path: join(artifacts, 'whip-publish.png') });
  const result = {
    ok: true,
    frames_decoded: (stats.video || {}).framesDecoded || 0,
    audio_energy: report.audio_energy,
    flashes: report.flashes,
    codecs: api.codecs,
    state: api.state,
  };
  if (api.state !== 'live') fail(`${name} is ${api.state}, not live`, result);
  if (!(result.frames_decoded > 60)) fail(`${name}: ${result.frames_decoded} frames decoded`, result);
  if (!(result.audio_energy > 0)) fail(`${name}: no audio came back`, result);
  if (!(result.flashes >= 3)) fail(`${name}: ${result.flashes} flashes seen in 5 s`, result);

  // The publisher leaves: the source waits for a producer again.
  await page.evaluate(() => window.publisher.stop());
  let after = api;
  for (let i = 0; i < 50 && after.state !== 'waiting'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await camera();
  }
  result.after_stop = after.state;
  if (after.state !== 'waiting') fail(`${name} is ${after.state} after the publisher left`, result);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

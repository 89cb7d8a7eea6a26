// Browser test of lockstep's own player (web/player/), in real Chromium: the UI with
// `?player=lockstep` plays every demo camera from its media socket (WebCodecs in a Worker, audio
// in an AudioWorklet as the master clock), and the page measures what it presents and plays
// (web/player/player-meter.js): each drawn flash at the vsync that shows it against each beep
// onset in the samples leaving the worklet, timed by the audio output timestamp.
//
//   node web/tests/player.mjs http://127.0.0.1:8350/ [artifacts-dir] [measure-s] [camera]
//
// Then the same camera with the page's main thread blocked 200 ms every second (a heavy UI):
// the sound must not stop (no underrun), and after each block the first picture shown is the
// one the sound is at, within a frame. Then every card is switched to WebRTC (the page's audio
// output must rest) and the camera back to the player (it must play again on the audio clock).
// Prints one JSON object (the measurements) and exits 0, or prints why and exits 1.

import { fail, launchChromium, watchedPage, waitForPlaying } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const artifacts = process.argv[3] || 'artifacts';
const measureSecs = Number(process.argv[4] || 20);
const camera = process.argv[5] || 'demo-drifting';
// Wide: a failure here is a broken clock (hundreds of ms), not a slow machine. The figures
// themselves go to bench/RESULTS.md.
const bound = Number(process.env.LOCKSTEP_PLAYER_OFFSET_BOUND_MS || 25);

mkdirSync(artifacts, { recursive: true });
const browser = await launchChromium();
try {
  const { page, consoleErrors } = await watchedPage(browser);
  await page.goto(new URL('/?player=lockstep', base).toString());
  const selector = `.card[data-camera="${camera}"]`;
  if (!await waitForPlaying(page, camera)) {
    await page.screenshot({ path: join(artifacts, 'player-failed.png') });
    fail(`${camera} did not start playing in the lockstep player`, { consoleErrors });
  }
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  // The sound is switched on as a user would (a click), so the audio clock runs.
  await page.click(`${selector} .sound`);
  await page.waitForTimeout(5000);
  await page.screenshot({ path: join(artifacts, 'player.png') });
  const result = { ok: true, camera, cross_origin_isolated: isolated, measure_s: measureSecs };
  result.steady = await page.evaluate(([n, ms]) => window.lockstep.measurePlayer(n, ms),
    [camera, measureSecs * 1000]);
  result.heavy_ui = await page.evaluate(([n, ms]) => window.lockstep.measurePlayer(n, ms, 200),
    [camera, 10000]);
  // Every card to WebRTC: the players stop and, with none left, the page's audio output rests.
  // Back to the lockstep player: it plays again, on a running audio clock.
  await page.evaluate(() => {
    for (const name of window.lockstep.cards.keys()) window.lockstep.setMode(name, 'webrtc');
  });
  const suspended = await page.waitForFunction(() => window.lockstep.audioOutputState() === 'suspended',
    null, { timeout: 5000 }).then(() => true, () => false);
  const viaWebrtc = await waitForPlaying(page, camera);
  await page.evaluate((n) => window.lockstep.setMode(n, 'player'), camera);
  const again = await waitForPlaying(page, camera);
  result.switched_back = again
    ? await page.evaluate((n) => window.lockstep.measurePlayer(n, 3000), camera) : null;
  result.audio_output = { with_no_player: suspended ? 'suspended' : 'not suspended',
    playing_again: await page.evaluate(() => window.lockstep.audioOutputState()) };
  result.console_errors = consoleErrors;

  const s = result.steady;
  if (s.player.clock !== 'audio') fail('the pictures do not follow the audio clock', result);
  if (!(s.presented > measureSecs * 20)) fail(`only ${s.presented} pictures presented`, result);
  if (s.offsets_ms.length < measureSecs * 0.6) fail(`only ${s.offsets_ms.length} flash/beep pairs`, result);
  const within = s.offsets_ms.filter((o) => Math.abs(o) <= bound).length;
  if (Math.abs(s.p50_ms) > bound || within < s.offsets_ms.length * 0.9) {
    fail(`rendered offset beyond ±${bound} ms (p50 ${s.p50_ms} ms, ${within} of ${s.offsets_ms.length} within)`, result);
  }
  if (s.underruns > 1) fail(`${s.underruns} audio underruns in a steady run`, result);
  const h = result.heavy_ui;
  // One stop in 20 s is a slow machine's (seen once in CI on two loaded cores); a player whose
  // audio depended on the main thread would stop at every one of the 20 blocks.
  if (h.underruns > 1) fail(`the sound stopped ${h.underruns} times while the page was busy`, result);
  if (!(h.presented > 10 * 12)) fail(`only ${h.presented} pictures presented while the page was busy`, result);
  // After each block the picture is the one the sound is at: within a frame (one block may
  // fall on a slow machine's own stall).
  if (h.recovered_within_a_frame < h.blocks - 1) {
    fail(`the pictures caught up within a frame after ${h.recovered_within_a_frame} of ${h.blocks} blocks`, result);
  }
  if (!suspended) fail('the audio output still runs with no lockstep player on the page', result);
  if (!viaWebrtc) fail(`${camera} did not play over WebRTC once switched`, result);
  const b = result.switched_back;
  if (!b || b.player.clock !== 'audio' || !(b.presented > 3 * 15)) {
    fail(`${camera} did not play again on the audio clock once switched back`, result);
  }
  if (!isolated) fail('the UI is not cross-origin isolated (COOP/COEP missing)', result);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

// For bench/webrtc_pulse.sh: the UI plays one camera over WebRTC with its sound on (into the
// PulseAudio sink the script set up, LOCKSTEP_UNMUTE=1), and after settling the page's own sync
// meter (web/sync-meter.js) runs on it. Prints its report: the offsets Chromium's playout
// clocks give, and each rendered flash on the Unix clock, to match with the sink's onsets.
//
//   node web/tests/webrtc_sink.mjs BASE CAMERA [measure-s] [settle-s]

import { fail, launchChromium, watchedPage, waitForPlaying } from './chromium.mjs';

const base = process.argv[2];
const camera = process.argv[3] || 'demo-clean';
const measureSecs = Number(process.argv[4] || 60);
const settleSecs = Number(process.argv[5] || 15);

const browser = await launchChromium();
try {
  const { page, consoleErrors } = await watchedPage(browser);
  await page.goto(new URL('/?player=webrtc', base).toString());
  const selector = `.card[data-camera="${camera}"]`;
  if (!await waitForPlaying(page, camera)) {
    fail(`${camera} did not start playing over WebRTC`, { consoleErrors });
  }
  await page.click(`${selector} .sound`);
  await page.waitForTimeout(settleSecs * 1000);
  const report = await page.evaluate(([n, ms]) => window.lockstep.measure(n, ms),
    [camera, measureSecs * 1000]);
  console.log(JSON.stringify({ ok: true, camera, settle_s: settleSecs, ...report }));
} finally {
  await browser.close();
}

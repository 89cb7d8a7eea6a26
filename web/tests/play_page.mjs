// A page that only plays: the UI with every demo camera playing and its sound on, in lockstep's
// own player (`lockstep`) or Chromium's WebRTC player (`webrtc`; `switched`: first in the
// lockstep player, then every card switched to WebRTC), no meter running, for `secs`. For
// bench/page_cpu.sh, which times the page's processes meanwhile.
//
//   node web/tests/play_page.mjs http://127.0.0.1:8350/ lockstep|webrtc|switched [secs]
// Prints one JSON object and exits 0, or prints why and exits 1.

import { authHeaders, fail, launchChromium, watchedPage, waitForPlaying } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const mode = process.argv[3] || 'lockstep';
const secs = Number(process.argv[4] || 60);

const browser = await launchChromium();
try {
  const { page, consoleErrors } = await watchedPage(browser);
  await page.goto(new URL(mode === 'webrtc' ? '/?player=webrtc' : '/?player=lockstep', base).toString());
  const api = await (await fetch(new URL('/api/cameras', base), { headers: authHeaders })).json();
  const names = api.filter((c) => c.kind === 'camera').map((c) => c.name);
  if (!await waitForPlaying(page, names)) fail('not every camera started playing', { consoleErrors });
  if (mode === 'switched') {
    await page.evaluate((n) => n.forEach((name) => window.lockstep.setMode(name, 'webrtc')), names);
    if (!await waitForPlaying(page, names)) fail('not every camera played over WebRTC once switched');
  }
  for (const name of names) await page.click(`.card[data-camera="${name}"] .sound`);
  await page.waitForTimeout(secs * 1000);
  console.log(JSON.stringify({ ok: true, mode, cameras: names, secs, console_errors: consoleErrors }));
} finally {
  await browser.close();
}

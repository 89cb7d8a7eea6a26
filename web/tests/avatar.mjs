// Browser test of a push source fed by examples/push_avatar.py, in real Chromium: the UI plays
// the avatar, its mouth moves (the brightness of the mouth's box changes) and its voice plays
// (audio energy through WebAudio).
//
//   node web/tests/avatar.mjs http://127.0.0.1:8350/ NAME [artifacts-dir]
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { fail, launchChromium, openPage, waitForPlaying } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const name = process.argv[3] || 'avatar';
const artifacts = process.argv[4] || 'artifacts';

mkdirSync(artifacts, { recursive: true });
const browser = await launchChromium();
try {
  const page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  const result = { ok: true };
  {
    if (!await waitForPlaying(page, name)) {
      await page.screenshot({ path: join(artifacts, 'avatar-failed.png') });
      fail(`${name}: the avatar did not start playing`, result);
    }
    // The mouth's box in the example's face (x 0.36-0.64, y 0.64-0.84 of the picture).
    const [mouth, sound] = await page.evaluate(([n, ms]) => Promise.all([
      window.lockstep.region(n, [0.4, 0.66, 0.6, 0.8], ms),
      window.lockstep.measure(n, ms),
    ]), [name, 8000]);
    const lo = Math.min(...mouth);
    const hi = Math.max(...mouth);
    result.avatar = {
      frames: mouth.length, mouth_min: lo, mouth_max: hi, audio_energy: sound.audio_energy,
    };
    await page.screenshot({ path: join(artifacts, `avatar-${name}.png`) });
    if (mouth.length < 60) fail(`${name}: only ${mouth.length} frames rendered in 8 s`, result);
    if (!(hi - lo > 15)) fail(`${name}: the mouth does not move (brightness ${lo.toFixed(0)}-${hi.toFixed(0)})`, result);
    if (!(sound.audio_energy > 0)) fail(`${name}: the avatar is silent`, result);
  }

  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

// What the browser tests share: headless Debian Chromium with the flags that let it play
// WebRTC from localhost with sound, and how a test reports failure.

import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/** Prints the failure (and what was measured so far) as the one JSON line, and exits 1. */
export function fail(message, extra = {}) {
  // What was measured so far, then the verdict: `extra` (a result begun as ok) cannot hide it.
  console.log(JSON.stringify({ ...extra, ok: false, message }));
  process.exit(1);
}

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

/** A page of the UI's size that collects the console's errors and uncaught exceptions. */
export async function watchedPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  return { page, consoleErrors };
}

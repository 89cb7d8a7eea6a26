// What the browser tests share: headless Debian Chromium with the flags that let it play
// WebRTC from localhost with sound, and how a test reports failure.

import { chromium } from 'playwright-core';

/**
 * `extraArgs`: more Chromium flags (a fake microphone, say). LOCKSTEP_UNMUTE=1 keeps the sound
 * on (playwright mutes it), for a sink such as PulseAudio's (PULSE_SERVER) to receive it.
 */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    ignoreDefaultArgs: process.env.LOCKSTEP_UNMUTE === '1' ? ['--mute-audio'] : [],
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
  });
}

/** Prints the failure (and what was measured so far) as the one JSON line, and exits 1. */
export function fail(message, extra = {}) {
  // What was measured so far, then the verdict: `extra` (a result begun as ok) cannot hide it.
  console.log(JSON.stringify({ ...extra, ok: false, message }));
  process.exit(1);
}

/**
 * The URL that logs a page in to the server under test (LOCKSTEP_LOGIN: the demo's
 * `/login?token=…`), and its token as the header of the script's own requests.
 */
export const loginUrl = process.env.LOCKSTEP_LOGIN || null;
export const authHeaders = loginUrl
  ? { authorization: `Bearer ${new URL(loginUrl).searchParams.get('token')}` }
  : {};

/**
 * Waits until the card of every camera in `names` (one name or a list) plays: true, or false
 * once `timeoutMs` has passed.
 */
export function waitForPlaying(page, names, timeoutMs = 30000) {
  const list = Array.isArray(names) ? names : [names];
  return page.waitForFunction((n) => n.every((name) =>
    document.querySelector(`.card[data-camera="${name}"]`)?.classList.contains('playing')),
  list, { timeout: timeoutMs }).then(() => true, () => false);
}

/** A new page, logged in to the server under test. */
export async function openPage(browser, options = {}) {
  const page = await browser.newPage(options);
  if (loginUrl) await page.goto(loginUrl);
  return page;
}

/** A page of the UI's size, logged in, that collects the console's errors and uncaught exceptions. */
export async function watchedPage(browser) {
  const page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  return { page, consoleErrors };
}

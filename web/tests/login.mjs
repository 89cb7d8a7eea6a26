// Browser test of logging in, in real Chromium: a page without a session is sent to the login
// page; a wrong password is refused with the reason; the viewer's password opens the UI with
// only the viewer's cameras; what the viewer may not do (export, talk) is refused by the
// server; logging out ends the session.
//
//   node web/tests/login.mjs http://127.0.0.1:8350/ NAME PASSWORD CAMERA
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { fail, launchChromium, watchedPage } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const name = process.argv[3];
const password = process.argv[4];
const camera = process.argv[5];

const browser = await launchChromium();
const result = { ok: true };
try {
  const { page, consoleErrors } = await watchedPage(browser);
  await page.goto(base);
  await page.waitForURL(/\/login\?next=/, { timeout: 10000 });
  result.sent_to = new URL(page.url()).pathname + new URL(page.url()).search;

  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('#error:not([hidden])', { timeout: 10000 });
  result.wrong_password = await page.textContent('#error');

  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  result.logged_in_as = await page.textContent('#who-name');
  await page.waitForSelector('.card[data-camera]', { timeout: 10000 });
  result.cameras = await page.$$eval('.card[data-camera]', (cards) => cards.map((c) => c.dataset.camera));

  result.refused = await page.evaluate(async (cam) => {
    const session = await (await fetch('/api/session')).json();
    const csrf = { 'X-CSRF-Token': session.csrf };
    const exported = await fetch(`/api/recordings/${cam}/export.mp4`);
    const talk = await fetch(`/api/talk/${cam}`, { method: 'POST', headers: csrf });
    return {
      export: [exported.status, (await exported.json()).error],
      talk: [talk.status, (await talk.json()).error],
    };
  }, camera);

  await page.click('#logout');
  await page.waitForURL(/\/login/, { timeout: 10000 });
  result.after_logout = await page.evaluate(async () => (await fetch('/api/cameras')).status);
  // The two 401s above are the test's own doing; anything else on the console is not.
  result.console_errors = consoleErrors.filter((e) => !e.includes('401') && !e.includes('403'));

  if (result.logged_in_as !== name) fail(`logged in as ${result.logged_in_as}`, result);
  if (JSON.stringify(result.cameras) !== JSON.stringify([camera])) fail('other cameras shown', result);
  if (result.refused.export[0] !== 403 || result.refused.talk[0] !== 403) fail('not refused', result);
  if (result.after_logout !== 401) fail('the session outlived its logout', result);
} catch (e) {
  fail(String(e), result);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

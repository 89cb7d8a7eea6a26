// Browser test of adding and removing a camera, in real Chromium: an admin logs in, opens "Add
// cameras", gives a name, an RTSP URL and its login; the camera's card appears and goes live
// (the server saved it and started it without a restart); the saved table shows the login as
// ***; the card's Remove button (confirmed) takes the camera away again.
//
//   node web/tests/add_camera.mjs http://127.0.0.1:8350/ ADMIN PASSWORD NAME RTSP-URL
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { fail, launchChromium, watchedPage } from './chromium.mjs';

const [base, admin, password, name, url] = process.argv.slice(2);

const browser = await launchChromium();
const result = { ok: true };
try {
  const { page, consoleErrors } = await watchedPage(browser);
  const refused = [];
  page.on('response', (r) => { if (r.status() >= 400) refused.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  page.on('dialog', (dialog) => {
    result.confirmed = dialog.message();
    dialog.accept();
  });
  await page.goto(base);
  await page.waitForURL(/\/login/, { timeout: 10000 });
  await page.fill('input[name=name]', admin);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#find-cameras:not([hidden])', { timeout: 10000 });

  await page.click('#find-cameras');
  await page.fill('#add-camera input[name=name]', name);
  await page.fill('#add-camera input[name=url]', url);
  await page.fill('#add-camera input[name=user]', 'admin');
  await page.fill('#add-camera input[name=password]', 'p@ss word');
  await page.click('#add-camera button[type=submit]');
  await page.waitForFunction(() => document.getElementById('add-status').textContent !== '',
    null, { timeout: 10000 });
  result.added = await page.textContent('#add-status');
  const card = `.card[data-camera="${name}"]`;
  await page.waitForSelector(`${card}[data-state=live]`, { timeout: 30000 });
  result.live = true;
  result.saved = await page.evaluate(async (cam) =>
    (await fetch(`/api/cameras/${cam}/config`)).json(), name);

  await page.click(`${card} .remove`);
  await page.waitForSelector(card, { state: 'detached', timeout: 10000 });
  result.removed = true;
  result.after = await page.evaluate(async (cam) => (await fetch(`/api/cameras/${cam}`)).status, name);
  // Expected: the page before logging in (401), and the test's own look after the removal.
  const expected = ['401 /api/session', `404 /api/cameras/${name}`];
  result.refused = refused.filter((r) => !expected.includes(r));
  result.console_errors = consoleErrors.filter((e) => !e.includes('status of 401') && !e.includes('status of 404'));

  if (!result.added.startsWith('added, saved in')) fail('not added', result);
  if (!String(result.saved.url).includes('***:***@')) fail('the login was shown back', result);
  if (result.after !== 404) fail('the camera outlived its removal', result);
  if (result.refused.length) fail('unexpected refusals', result);
} catch (e) {
  fail(String(e), result);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

// Browser test of the camera wall, in real Chromium: sixteen sources fit the grid in smaller
// cards (four or more across at 1600 px), a waiting source's line is not covered by the sync
// figures, and a card opens large across the grid and closes again.
//
//   node web/tests/grid.mjs http://127.0.0.1:8350/ COUNT
//
// Prints one JSON object and exits 0, or prints why and exits 1.

import { fail, launchChromium } from './chromium.mjs';

const base = process.argv[2] || 'http://127.0.0.1:8350/';
const count = Number(process.argv[3] || 16);

const browser = await launchChromium();
const result = { ok: true };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  page.on('response', (r) => { if (r.status() >= 400) consoleErrors.push(`${r.status()} ${r.url()}`); });
  await page.goto(base);
  await page.waitForFunction((n) => document.querySelectorAll('.card[data-camera]').length === n,
    count, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('.card .veil-text').textContent.startsWith('waiting'),
    null, { timeout: 15000 });
  const layout = () => page.evaluate(() => {
    const cards = [...document.querySelectorAll('.card[data-camera]')];
    const boxes = cards.map((c) => c.getBoundingClientRect());
    const first = cards[0];
    const veil = first.querySelector('.veil-text').getBoundingClientRect();
    const overlay = first.querySelector('.overlay');
    const box = overlay.getBoundingClientRect();
    const overlaps = getComputedStyle(overlay).visibility !== 'hidden'
      && !(box.right <= veil.left || veil.right <= box.left || box.bottom <= veil.top || veil.bottom <= box.top);
    return {
      many: document.getElementById('grid').classList.contains('many'),
      columns: new Set(boxes.map((b) => Math.round(b.left))).size,
      narrowest: Math.min(...boxes.map((b) => b.width)),
      first_width: boxes[0].width,
      grid_width: document.getElementById('grid').getBoundingClientRect().width,
      waiting_line: first.querySelector('.veil-text').textContent,
      figures_over_line: overlaps,
    };
  });
  result.wall = await layout();
  await page.click('.card[data-camera] .enlarge');
  result.large = await layout();
  await page.click('.card[data-camera] .enlarge');
  result.back = await layout();
  result.console_errors = consoleErrors;

  const { wall, large, back } = result;
  if (!wall.many || wall.columns < 4 || wall.narrowest < 280) fail('the wall does not fit', result);
  if (wall.figures_over_line) fail('the sync figures cover the waiting line', result);
  if (Math.abs(large.first_width - large.grid_width) > 2) fail('not large', result);
  if (Math.abs(back.first_width - wall.first_width) > 2) fail('did not come back', result);
} catch (e) {
  fail(String(e), result);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

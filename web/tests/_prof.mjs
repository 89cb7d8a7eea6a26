import { launchChromium, watchedPage } from './chromium.mjs';
const base = process.argv[2]; const mode = process.argv[3] || 'lockstep';
const browser = await launchChromium();
const { page } = await watchedPage(browser);
await page.goto(new URL(mode === 'lockstep' ? '/?player=lockstep' : '/', base).toString());
for (const n of ['demo-clean', 'demo-drifting']) {
  await page.waitForFunction((s) => document.querySelector(s)?.classList.contains('playing'), `.card[data-camera="${n}"]`, { timeout: 30000 });
  await page.click(`.card[data-camera="${n}"] .sound`);
}
await page.waitForTimeout(8000);
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
await page.waitForTimeout(10000);
const { profile } = await cdp.send('Profiler.stop');
// self time per function
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = profile.timeDeltas; let total = 0;
profile.samples.forEach((id, i) => { const n = byId.get(id); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`; self.set(k, (self.get(k) || 0) + (dt[i] || 0)); total += dt[i] || 0; });
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
for (const [k, v] of rows) console.log((v / 1000).toFixed(0).padStart(6), 'ms', (100 * v / total).toFixed(1).padStart(5) + '%', k);
await browser.close();

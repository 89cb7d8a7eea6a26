// "Find cameras" (admins): the server probes its LAN for ONVIF cameras (POST /api/discover),
// asks each one what it streams with the login given here, and shows a [[camera]] block per
// device to paste into lockstep.toml. The password goes to the server for this search only.

import { csrfHeaders } from './session.js';

/** Shows the button and wires the panel. */
export function offerDiscovery() {
  const button = document.getElementById('find-cameras');
  const section = document.getElementById('discovery');
  const form = document.getElementById('discovery-form');
  const status = document.getElementById('discovery-status');
  const results = document.getElementById('discovery-results');
  button.hidden = false;
  button.addEventListener('click', () => { section.hidden = !section.hidden; });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { timeout_secs: 3 };
    const user = data.get('user').trim();
    if (user) { body.user = user; body.password = data.get('password'); }
    const address = data.get('address').trim();
    if (address) { body.addresses = [address]; body.probe = true; }
    status.textContent = 'searching…';
    results.replaceChildren();
    const response = await fetch('/api/discover', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(await csrfHeaders()) },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) { status.textContent = answer.error || `${response.status}`; return; }
    status.textContent = answer.devices.length === 0
      ? 'No ONVIF camera answered. A camera on another subnet: give its address.'
      : `${answer.devices.length} found. Paste a block into lockstep.toml and restart lockstep.`;
    for (const device of answer.devices) results.append(deviceView(device));
  });
}

function deviceView(report) {
  const item = document.createElement('article');
  item.className = 'found';
  const title = document.createElement('h3');
  const info = report.device?.info;
  title.textContent = [report.name, info && `${info.manufacturer} ${info.model}`]
    .filter(Boolean).join(' — ') || report.service;
  item.append(title);
  if (report.error) {
    const error = document.createElement('p');
    error.className = 'error';
    error.textContent = report.error;
    item.append(error);
  }
  for (const profile of report.device?.profiles ?? []) {
    const line = document.createElement('p');
    const video = profile.video
      ? `${profile.video.codec} ${profile.video.width}×${profile.video.height}` : 'no video';
    const audio = profile.audio ? profile.audio.codec : 'no audio';
    line.textContent = `${profile.name}: ${video}, ${audio}${profile.talkback ? ', talkback' : ''}`;
    item.append(line);
  }
  if (report.camera) {
    const block = document.createElement('pre');
    block.textContent = report.camera;
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.textContent = 'Copy';
    copy.addEventListener('click', () => navigator.clipboard?.writeText(report.camera));
    item.append(block, copy);
  }
  return item;
}

// "Add cameras" (admins): the server probes its LAN for ONVIF cameras (POST /api/discover),
// asks each one what it streams with the login given here, and shows each device with a button
// that adds it (POST /api/cameras/{name}: saved in lockstep.toml, started at once) and the
// [[camera]] block it saves. A camera can also be added by its RTSP URL, and removed from its
// card. A password goes to the server only: it is never shown back.

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
  offerManualAdd();
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
      : `${answer.devices.length} found: add one, or paste its block into lockstep.toml.`;
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
    const name = document.createElement('input');
    name.value = report.table.name;
    name.setAttribute('aria-label', 'Name');
    const add = document.createElement('button');
    add.type = 'button';
    add.textContent = 'Add';
    const status = document.createElement('span');
    status.setAttribute('role', 'status');
    add.addEventListener('click', async () => {
      const { name: _, ...table } = report.table;
      status.textContent = await addCamera(name.value.trim(), table);
    });
    item.append(block, name, add, status);
  }
  return item;
}

/** Adds camera `name` with `table` (its [[camera]] keys); says what happened. */
async function addCamera(name, table) {
  const response = await fetch(`/api/cameras/${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(await csrfHeaders()) },
    body: JSON.stringify(table),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) return answer.error || `refused (${response.status})`;
  return answer.saved_to ? `added, saved in ${answer.saved_to}` : 'added (this run only: no config file)';
}

/** The form that adds a camera by its RTSP URL, the login put into the URL. */
function offerManualAdd() {
  const form = document.getElementById('add-camera');
  const status = document.getElementById('add-status');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let url;
    try {
      url = new URL(data.get('url').trim());
    } catch {
      status.textContent = 'the URL is not valid (rtsp://host[:port]/path)';
      return;
    }
    const user = data.get('user').trim();
    if (user) {
      url.username = encodeURIComponent(user);
      url.password = encodeURIComponent(data.get('password'));
    }
    status.textContent = await addCamera(data.get('name').trim(), { url: url.toString() });
    if (status.textContent.startsWith('added')) form.reset();
  });
}

/** The card's Remove button (admins): asks, then removes the camera. */
export function offerRemoval(card, name) {
  const button = card.querySelector('.remove');
  button.hidden = false;
  button.addEventListener('click', async () => {
    if (!confirm(`Remove camera ${name}? Its recordings stay.`)) return;
    const response = await fetch(`/api/cameras/${encodeURIComponent(name)}`, {
      method: 'DELETE',
      headers: await csrfHeaders(),
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      alert(answer.error || `refused (${response.status})`);
    }
  });
}

// The camera grid: lists cameras from the API, plays each over WebRTC, and overlays its live sync
// state. Camera state comes once a second on the signalling socket (/api/ws), which also sets up
// the viewers; while it is down the page polls /api/cameras and uses WHEP.

import { WhepSession } from './whep.js';
import { SyncMeter } from './sync-meter.js';
import { Timeline } from './timeline.js';
import { Signalling } from './signalling.js';

const grid = document.getElementById('grid');
const cards = new Map();   // name -> { el, session, video, stream }

function fmt(v, unit, digits = 1) {
  return v === null || v === undefined ? '–' : `${Number(v).toFixed(digits)} ${unit}`;
}

function card(camera) {
  let c = cards.get(camera.name);
  if (c) return c;
  const el = document.getElementById('card').content.firstElementChild.cloneNode(true);
  el.dataset.camera = camera.name;
  el.querySelector('.name').textContent = camera.name;
  const video = el.querySelector('video');
  const sound = el.querySelector('.sound');
  sound.addEventListener('click', () => {
    video.muted = !video.muted;
    sound.textContent = video.muted ? 'Sound off' : 'Sound on';
    sound.classList.toggle('on', !video.muted);
    if (!video.muted) video.play().catch(() => {});
  });
  grid.appendChild(el);
  // A camera with a substream plays it in the grid; the button asks for the main stream
  // (`auto`: the server still sends the substream to a browser that cannot play the main one).
  c = { el, video, session: null, stream: null, playing: false, want: camera.substream ? 'sub' : 'auto' };
  const quality = el.querySelector('.quality');
  quality.addEventListener('click', () => {
    c.want = c.want === 'sub' ? 'auto' : 'sub';
    retry(c);
  });
  c.playback = el.querySelector('video.playback');
  const back = el.querySelector('.back-live');
  c.timeline = new Timeline(el.querySelector('.recordings'), camera.name, (url) => {
    // Recorded audio plays with the picture; the live sound is muted meanwhile.
    c.playback.src = url;
    c.playback.hidden = false;
    back.hidden = false;
    el.classList.add('replaying');
    video.muted = true;
    c.playback.play().catch(() => {});
  });
  back.addEventListener('click', () => {
    c.playback.pause();
    c.playback.removeAttribute('src');
    c.playback.load();
    c.playback.hidden = true;
    back.hidden = true;
    el.classList.remove('replaying');
  });
  c.timeline.refresh();
  cards.set(camera.name, c);
  return c;
}

async function play(c, camera) {
  if (c.session) return;
  c.session = new WhepSession(new URL(camera.whep, location.href).toString(), signalling, camera.name, c.want);
  try {
    c.stream = await c.session.start();
    const quality = c.el.querySelector('.quality');
    quality.hidden = !camera.substream;
    quality.textContent = c.session.playing === 'sub' ? 'SD' : 'HD';
    quality.title = c.session.playing !== 'sub' ? 'Playing the main stream: click for the substream'
      : c.want === 'sub' ? 'Playing the substream: click for the main stream'
        : `This browser cannot receive the main stream (${camera.codecs.video}): playing the substream`;
    c.video.srcObject = c.stream;
    c.video.onplaying = () => { c.playing = true; c.el.classList.add('playing'); };
    await c.video.play().catch(() => {});
    c.session.pc.onconnectionstatechange = () => {
      const s = c.session && c.session.pc && c.session.pc.connectionState;
      if (s === 'failed' || s === 'closed' || s === 'disconnected') retry(c);
    };
  } catch (e) {
    c.el.querySelector('.veil-text').textContent = `cannot play: ${e.message}`;
    retry(c);
  }
}

function retry(c) {
  const session = c.session;
  c.session = null;
  c.playing = false;
  c.el.classList.remove('playing');
  if (session) session.stop();
}

function update(camera) {
  const c = card(camera);
  const el = c.el;
  el.dataset.state = camera.state;
  el.querySelector('.state').textContent = camera.state;
  el.querySelector('.codecs').textContent =
    [camera.codecs.video, camera.codecs.audio].filter(Boolean).join(' + ').toUpperCase();
  const error = el.querySelector('.error');
  error.hidden = !camera.error;
  error.textContent = camera.error || '';
  const s = camera.sync || {};
  const set = (k, text) => { el.querySelector(`[data-k="${k}"]`).textContent = text; };
  set('offset', fmt(s.offset_ms, 'ms', 2));
  set('adrift', fmt(s.audio_drift_ppm, 'ppm', 0));
  set('vdrift', fmt(s.video_drift_ppm, 'ppm', 0));
  set('latency', fmt(s.latency_ms, 'ms', 0));
  set('jitter', fmt(s.jitter_ms, 'ms', 1));
  set('loss', s.loss_ratio === undefined ? '–' : `${(s.loss_ratio * 100).toFixed(2)} %`);
  set('clock', s.clock_source || '–');
  const good = s.offset_ms !== null && s.offset_ms !== undefined && Math.abs(s.offset_ms) <= 5;
  el.querySelector('[data-k="offset"]').classList.toggle('good', good);
  if (!c.playing) {
    el.querySelector('.veil-text').textContent =
      camera.state === 'live' ? 'starting…'
        : camera.state === 'waiting' ? `waiting for a producer (ws://${location.host}/api/push/${camera.name})`
          : camera.state;
  }
  if (camera.state === 'live') play(c, camera);
}

function render(cameras) {
  document.getElementById('empty').hidden = cameras.length > 0;
  const live = cameras.filter((c) => c.state === 'live').length;
  document.getElementById('summary').textContent =
    `${live} of ${cameras.length} camera${cameras.length === 1 ? '' : 's'} live`;
  cameras.forEach(update);
}

// Camera state comes on the signalling socket; while it is down, from polling.
const signalling = new Signalling(render);

async function refresh() {
  if (signalling.open) return;
  try {
    render(await (await fetch('/api/cameras')).json());
  } catch (e) {
    document.getElementById('summary').textContent = 'server unreachable';
  }
}

refresh();
setInterval(refresh, 1000);
setInterval(() => cards.forEach((c) => c.timeline.refresh()), 5000);

// For tests and the benchmark: measure rendered lip sync of one camera for `ms` milliseconds.
window.lockstep = {
  cards,
  signalling,
  dropSignalling() { signalling.drop(); },
  async measure(name, ms) {
    const c = cards.get(name);
    if (!c || !c.stream) throw new Error(`camera ${name} is not playing`);
    const meter = new SyncMeter(c.video, c.stream, c.session.pc);
    await meter.start();
    await new Promise((r) => setTimeout(r, ms));
    meter.stop();
    return meter.report();
  },
  /** Mean brightness of a region of what the card renders, once a frame, for `ms`. */
  async region(name, box, ms) {
    const c = cards.get(name);
    if (!c || !c.stream) throw new Error(`camera ${name} is not playing`);
    const canvas = document.createElement('canvas');
    canvas.width = 16;
    canvas.height = 16;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const values = [];
    const v = c.video;
    let done = false;
    const onFrame = () => {
      if (done) return;
      const [x0, y0, x1, y1] = box.map((f, i) => f * (i % 2 ? v.videoHeight : v.videoWidth));
      ctx.drawImage(v, x0, y0, x1 - x0, y1 - y0, 0, 0, 16, 16);
      const px = ctx.getImageData(0, 0, 16, 16).data;
      let sum = 0;
      for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2];
      values.push(sum / (px.length / 4) / 3);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
    await new Promise((r) => setTimeout(r, ms));
    done = true;
    return values;
  },
  async stats(name) {
    const c = cards.get(name);
    const out = {};
    if (!c || !c.session || !c.session.pc) return out;
    (await c.session.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') out[r.kind] = r;
    });
    return out;
  },
};

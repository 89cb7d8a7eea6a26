// The camera grid: lists cameras from the API, plays each over WebRTC or with lockstep's own
// player (player/player.js: chosen per camera, remembered; `?player=lockstep` for all), and
// overlays its live sync state. Camera state comes once a second on the signalling socket (/api/ws), which also sets up
// the viewers; while it is down the page polls /api/cameras and uses WHEP.

import { WhepSession } from './whep.js';
import { SyncMeter } from './sync-meter.js';
import { Timeline } from './timeline.js';
import { Signalling } from './signalling.js';
import { MediaPlayer, audioOutputState } from './player/player.js';
import { PlayerMeter } from './player/player-meter.js';
import { csrfHeaders, currentSession, logout, toLogin } from './session.js';
import { TalkSession, microphoneAllowed } from './talk.js';
import { offerDiscovery, offerRemoval } from './discover.js';

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
    c.muted = !c.muted;
    video.muted = c.muted;
    if (c.player) c.player.setMuted(c.muted);
    sound.textContent = c.muted ? 'Sound off' : 'Sound on';
    sound.classList.toggle('on', !c.muted);
    if (!c.muted) video.play().catch(() => {});
  });
  grid.appendChild(el);
  // A camera with a substream plays it in the grid; the button asks for the main stream
  // (`auto`: the server still sends the substream to a browser that cannot play the main one).
  c = {
    el, video, session: null, stream: null, playing: false, muted: true, webrtcFailures: 0,
    want: camera.substream ? 'sub' : 'auto',
    canvas: el.querySelector('canvas.player'), player: null, mode: preferredMode(camera.name),
  };
  const mode = el.querySelector('.mode');
  mode.addEventListener('click', () => {
    setMode(c, c.mode === 'player' ? 'webrtc' : 'player');
    localStorage.setItem(`lockstep.mode.${camera.name}`, c.mode);
  });
  showMode(c);
  const quality = el.querySelector('.quality');
  quality.addEventListener('click', () => {
    c.want = c.want === 'sub' ? 'auto' : 'sub';
    retry(c);
  });
  // Large view: the card across the grid, with the main stream where there is a substream.
  el.querySelector('.enlarge').addEventListener('click', () => {
    const large = el.classList.toggle('large');
    if (camera.substream) {
      c.want = large ? 'auto' : 'sub';
      retry(c);
    }
    if (large) el.scrollIntoView({ block: 'start', behavior: 'smooth' });
  });
  el.querySelector('.stage').addEventListener('dblclick', () => {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else el.querySelector('.stage').requestFullscreen().catch(() => {});
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
  c.timeline.enabled = camera.recording?.state !== 'off';
  c.timeline.refresh();
  c.talk = talkButton(c, camera.name);
  if (mayAdminister && camera.kind === 'camera') offerRemoval(el, camera.name);
  cards.set(camera.name, c);
  return c;
}

/** Talk after signing-in allowed it. */
let mayTalk = false;
/** Cameras are added and removed by admins. */
let mayAdminister = false;
/** A click shorter than this latches talk on (a hold talks while held). */
const LATCH_CLICK_MS = 300;

/**
 * The card's talk button: hold to talk, or click to talk until the next click. Its session is
 * set up ahead of the first press when the microphone is already allowed.
 */
function talkButton(c, name) {
  const button = c.el.querySelector('.talk');
  const note = c.el.querySelector('.talk-note');
  const session = new TalkSession(name, (state, message) => {
    button.classList.toggle('talking', state === 'talking');
    button.textContent = state === 'talking' ? 'Talking…' : 'Talk';
    note.textContent = state === 'busy' ? 'someone else is talking'
      : state === 'error' ? `talk: ${message}` : '';
    note.title = message;
  });
  let pressedAt = 0;
  let latched = false;
  button.addEventListener('pointerdown', (event) => {
    if (button.disabled) return;
    button.setPointerCapture(event.pointerId);
    if (latched) return; // the click that ends a latched talk
    pressedAt = performance.now();
    session.press();
  });
  button.addEventListener('pointerup', () => {
    if (latched) {
      latched = false;
      session.release();
    } else if (performance.now() - pressedAt < LATCH_CLICK_MS) {
      latched = true;
    } else {
      session.release();
    }
  });
  button.addEventListener('pointercancel', () => { latched = false; session.release(); });
  return { button, session, prepared: false };
}

/** Shows the talk button as the camera's `talkback` allows, and sets its session up early. */
function showTalk(c, camera) {
  const t = camera.talkback;
  const { button } = c.talk;
  button.hidden = !t || !mayTalk;
  if (button.hidden) return;
  const reason = t.available === false ? t.reason
    : !window.isSecureContext ? 'the microphone needs HTTPS here (server.tls = "self-signed")'
      : null;
  button.disabled = reason !== null;
  button.title = reason ? `Cannot talk: ${reason}`
    : 'Hold to talk through the camera\'s speaker; click to talk until you click again';
  if (!reason && !c.talk.prepared) {
    c.talk.prepared = true;
    microphoneAllowed().then((allowed) => { if (allowed) c.talk.session.prepare().catch(() => {}); });
  }
}

/** `?player=lockstep|webrtc` for every camera, else this camera's last choice, else WebRTC. */
function preferredMode(name) {
  const forced = new URLSearchParams(location.search).get('player');
  if (forced) return forced === 'lockstep' ? 'player' : 'webrtc';
  return localStorage.getItem(`lockstep.mode.${name}`) === 'player' ? 'player' : 'webrtc';
}

function showMode(c) {
  const button = c.el.querySelector('.mode');
  button.textContent = c.mode === 'player' ? 'lockstep player' : 'WebRTC';
  button.classList.toggle('lockstep', c.mode === 'player');
  c.video.hidden = c.mode === 'player';
  c.canvas.hidden = c.mode !== 'player';
}

function setMode(c, mode) {
  if (c.mode === mode) return;
  retry(c);
  c.mode = mode;
  showMode(c);
}

/** lockstep's own player on the camera's media socket. */
function playWithPlayer(c, camera) {
  if (c.player) return;
  const url = new URL(`/api/media/${encodeURIComponent(camera.name)}`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (c.want === 'sub') url.search = 'stream=sub';
  const veil = c.el.querySelector('.veil-text');
  c.player = new MediaPlayer(c.canvas, url.toString(), {
    onStatus: (state, message) => {
      if (state === 'error' || state === 'reconnecting') veil.textContent = message;
      c.playerError = state === 'error' ? `player: ${message}` : null;
      showError(c);
    },
    onFirstFrame: () => { c.playing = true; c.el.classList.add('playing'); },
  });
  c.player.setMuted(c.muted);
  c.player.start().catch((e) => { veil.textContent = `cannot start the player: ${e.message}`; });
}

async function play(c, camera) {
  if (c.mode === 'player') { playWithPlayer(c, camera); return; }
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
    // WebRTC cannot play this camera here (no codec in common, UDP blocked): the player can.
    if (window.VideoDecoder && ++c.webrtcFailures >= 2) setMode(c, 'player');
  }
}

function retry(c) {
  if (c.player) {
    c.player.stop();
    c.player = null;
    c.playerError = null;
    showError(c);
  }
  const session = c.session;
  c.session = null;
  c.playing = false;
  c.el.classList.remove('playing');
  if (session) session.stop();
}

/** The camera's own error (the server's), else what the player last said went wrong. */
function showError(c) {
  const error = c.el.querySelector('.error');
  const text = c.cameraError || c.playerError || '';
  error.hidden = !text;
  error.textContent = text;
}

function update(camera) {
  const c = card(camera);
  const el = c.el;
  el.dataset.state = camera.state;
  el.querySelector('.state').textContent = camera.state;
  c.timeline.enabled ||= camera.recording?.state !== 'off';
  el.querySelector('.codecs').textContent =
    [camera.codecs.video, camera.codecs.audio].filter(Boolean).join(' + ').toUpperCase();
  c.cameraError = camera.error;
  showError(c);
  const s = camera.sync || {};
  const set = (k, text) => { el.querySelector(`[data-k="${k}"]`).textContent = text; };
  set('offset', fmt(s.offset_ms, 'ms', 2));
  set('adrift', fmt(s.audio_drift_ppm, 'ppm', 0));
  set('vdrift', fmt(s.video_drift_ppm, 'ppm', 0));
  set('latency', fmt(s.latency_ms, 'ms', 0));
  set('jitter', fmt(s.jitter_ms, 'ms', 1));
  set('loss', s.loss_ratio === undefined ? '–' : `${(s.loss_ratio * 100).toFixed(2)} %`);
  set('clock', s.clock_source || '–');
  let offset = s.offset_ms;
  if (c.player) {
    // What the player itself measures: the picture drawn against the sound heard, and the
    // source's latency plus the player's delay behind it.
    const p = c.player.stats();
    offset = p.offset_mean_ms;
    set('offset', fmt(offset, 'ms', 1));
    if (s.latency_ms !== undefined && p.delay_ms !== null) set('latency', fmt(s.latency_ms + p.delay_ms, 'ms', 0));
  }
  const good = offset !== null && offset !== undefined && Math.abs(offset) <= 5;
  el.querySelector('[data-k="offset"]').classList.toggle('good', good);
  if (!c.playing) {
    el.querySelector('.veil-text').textContent =
      camera.state === 'live' ? 'starting…'
        : camera.state === 'waiting' ? `waiting for a producer (ws://${location.host}/api/push/${camera.name})`
          : camera.state;
  }
  showTalk(c, camera);
  if (camera.state === 'live') play(c, camera);
}

function render(cameras) {
  document.getElementById('empty').hidden = cameras.length > 0;
  grid.classList.toggle('many', cameras.length > 6);
  const live = cameras.filter((c) => c.state === 'live').length;
  document.getElementById('summary').textContent =
    `${live} of ${cameras.length} camera${cameras.length === 1 ? '' : 's'} live`;
  cameras.forEach(update);
  // A camera removed (by an admin, here or elsewhere): its card goes, its session ends.
  const names = new Set(cameras.map((camera) => camera.name));
  for (const [name, c] of cards) {
    if (names.has(name)) continue;
    retry(c);
    c.el.remove();
    cards.delete(name);
  }
}

// Camera state comes on the signalling socket; while it is down, from polling. Both start once
// the page knows it has a session (without one it leaves for the login page).
let signalling = null;

async function refresh() {
  if (signalling?.open) return;
  try {
    const response = await fetch('/api/cameras');
    if (response.status === 401) { toLogin(); return; }
    render(await response.json());
  } catch (e) {
    document.getElementById('summary').textContent = 'server unreachable';
  }
}

currentSession().then((session) => {
  mayTalk = session.permissions.includes('talk');
  mayAdminister = session.permissions.includes('admin');
  signalling = new Signalling(render);
  refresh();
  setInterval(refresh, 1000);
  setInterval(() => cards.forEach((c) => c.timeline.refresh()), 5000);
  showWho(session);
});

/** Who is logged in, with a way out. */
function showWho(session) {
  if (session.permissions.includes('admin')) offerDiscovery();
  if (session.via === 'open') return;
  document.getElementById('who-name').textContent = session.name;
  document.getElementById('who').hidden = false;
  document.getElementById('logout').addEventListener('click', logout);
  if (session.via === 'run-token') offerFirstAdmin();
}

/** On a server without users, the run's admin creates the first lasting one. */
async function offerFirstAdmin() {
  const users = await (await fetch('/api/users')).json();
  if (users.length > 0) return;
  const section = document.getElementById('first-run');
  const form = document.getElementById('first-admin');
  const status = document.getElementById('first-run-status');
  section.hidden = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const name = data.get('name');
    const response = await fetch('/api/users', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(await csrfHeaders()) },
      body: JSON.stringify({ name, password: data.get('password'), role: 'admin' }),
    });
    if (response.status === 201) {
      form.hidden = true;
      section.querySelector('p').textContent =
        `Admin ${name} created: log in as ${name} after the next start.`;
    } else {
      status.textContent = (await response.json()).error || `${response.status}`;
    }
  });
}

// For tests and the benchmark: measure rendered lip sync of one camera for `ms` milliseconds.
window.lockstep = {
  cards,
  /** The talk session of a camera (its `press()` and `release()`, as the button calls them). */
  talk(name) { return cards.get(name).talk.session; },
  get signalling() { return signalling; },
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
  setMode(name, mode) { setMode(cards.get(name), mode); },
  /** The lockstep players' shared audio output: 'running', 'suspended' or 'none'. */
  audioOutputState,
  /**
   * Rendered sync of lockstep's player on one camera for `ms` (player/player-meter.js); with
   * `blockMs`, the page's main thread is blocked that long every second meanwhile.
   */
  async measurePlayer(name, ms, blockMs = 0) {
    const c = cards.get(name);
    if (!c || !c.player) throw new Error(`camera ${name} is not in the lockstep player`);
    const meter = new PlayerMeter(c.player);
    meter.start();
    const block = blockMs ? setInterval(() => {
      const until = performance.now() + blockMs;
      while (performance.now() < until) { /* a heavy page */ }
      meter.noteBlockEnd();
    }, 1000) : null;
    await new Promise((r) => setTimeout(r, ms));
    clearInterval(block);
    meter.stop();
    return meter.report();
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

// The player's Worker: owns the media socket (/api/media/NAME) and the WebCodecs decoders, off
// the page's main thread. Decoded pictures go to the page (transferred, never copied); decoded
// audio goes straight to the audio thread — into the shared ring, or as messages on a port of
// the worklet — so a busy page cannot starve the sound.
//
// Messages in: {type:'start', url, shared?, port?}, {type:'stop'}, {type:'page_stats', stats}.
// Messages out: {type:'status', state, message}, {type:'header', header, fresh},
// {type:'frame', frame},
// {type:'skipped', frames}, {type:'stats', stats}.

import { AudioRing } from './audio-ring.js';

const FRAME_HEADER_BYTES = 10;
const KIND_VIDEO = 1;
const KIND_AUDIO = 2;
/** Decode queue beyond which this device cannot keep up: skip to the next keyframe. */
const MAX_DECODE_QUEUE = 30;
const JITTER_WINDOW_MS = 5000;
/** After a (re)connection, arrivals this long are the start-up's (decoders warming), not jitter. */
const SETTLE_MS = 1000;
const MIN_TARGET_MS = 20;
const MAX_TARGET_MS = 400;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
/** A connection that lasted this long was healthy: the next reconnection starts the backoff over. */
const HEALTHY_MS = 10000;

let url = null;
let ring = null;       // shared with the worklet
let audioPort = null;  // or messages to it
let socket = null;
let stopped = false;
let attempt = 0;
let openedAt = 0;
let video = null;
let audio = null;
let waitingForKey = true;
let chain = Promise.resolve();
let pageStats = {};
const stats = {
  connects: 0, video_decoded: 0, video_skipped: 0, audio_decoded: 0, server_skipped: 0,
  bad_messages: 0, jitter_ms: 0, target_ms: MIN_TARGET_MS, decode_errors: 0,
};
// [arrival ms, lateness ms] of audio as it reaches the ring, for the jitter estimate.
let lateness = [];
let settledAt = 0;
// How long after their due instant (the header's origin + stamp, on the Unix clock) frames
// reach the worker: the server's release lag plus the transport, for the latency breakdown.
let originUnixMs = null;
const arrival = { audio: [], video: [] };
const ARRIVALS_KEPT = 250;

onmessage = (e) => {
  const m = e.data;
  if (m.type === 'start') {
    url = m.url;
    if (m.shared) ring = new AudioRing(m.shared);
    else audioPort = m.port;
    connect();
  } else if (m.type === 'stop') {
    stopped = true;
    if (socket) socket.close(1000, 'the viewer left');
    closeDecoders();
  } else if (m.type === 'page_stats') {
    pageStats = m.stats;
  }
};

function status(state, message = '') {
  postMessage({ type: 'status', state, message });
}

function connect() {
  if (stopped) return;
  status('connecting');
  socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  const mine = socket;
  socket.onmessage = (e) => {
    // In order, with the decoders' (async) configuration in between.
    chain = chain.then(() => (mine === socket ? handle(e.data) : null)).catch((err) => {
      protocolError(err.message);
    });
  };
  socket.onclose = (e) => {
    if (mine !== socket) return;
    closeDecoders();
    if (stopped) return;
    // A server that keeps failing the same way is asked less and less often.
    if (performance.now() - openedAt > HEALTHY_MS) attempt = 0;
    const wait = BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)];
    status('reconnecting', `${e.reason || 'the connection closed'} (code ${e.code}); again in ${wait / 1000} s`);
    setTimeout(connect, wait);
  };
  openedAt = performance.now();
  stats.connects++;
}

/** A message we cannot use: say so, and start over on a new connection. */
function protocolError(message) {
  stats.bad_messages++;
  restart(message, 'bad message');
}

/**
 * Start over on a new connection (after the backoff), which begins at a keyframe: a decoder
 * that failed is closed for good, and the stream after a bad message cannot be trusted.
 */
function restart(message, reason) {
  status('error', message);
  if (socket && socket.readyState <= 1) socket.close(4000, reason);
}

async function handle(data) {
  if (typeof data === 'string') {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      throw new Error(`a text message that is not JSON (${e.message})`);
    }
    if (msg.type === 'header') await configure(msg);
    else if (msg.type === 'skipped') {
      stats.server_skipped += msg.frames;
      postMessage({ type: 'skipped', frames: msg.frames, reason: msg.reason });
    }
    return;
  }
  if (data.byteLength < FRAME_HEADER_BYTES) {
    throw new Error(`a frame message of ${data.byteLength} bytes (at least ${FRAME_HEADER_BYTES})`);
  }
  const view = new DataView(data);
  const kind = view.getUint8(0);
  const key = (view.getUint8(1) & 1) === 1;
  const tsUs = Number(view.getBigInt64(2));
  const payload = new Uint8Array(data, FRAME_HEADER_BYTES);
  noteArrival(kind === KIND_VIDEO ? arrival.video : arrival.audio, tsUs);
  if (kind === KIND_VIDEO) decodeVideo(key, tsUs, payload);
  else if (kind === KIND_AUDIO) decodeAudio(tsUs, payload);
  else throw new Error(`a frame message of unknown kind ${kind}`);
}

async function configure(header) {
  const fresh = !video && !audio;
  if (fresh) {
    // A new connection's timeline is unrelated to the last one's.
    if (ring) ring.reset();
    else audioPort.postMessage({ type: 'reset' });
    lateness = [];
    settledAt = performance.now() + SETTLE_MS;
  }
  postMessage({ type: 'header', header, fresh });
  originUnixMs = header.origin_unix_us / 1000;
  closeVideo();
  const missing = [];
  if (header.video) {
    const config = { codec: header.video.codec, optimizeForLatency: true };
    const support = await VideoDecoder.isConfigSupported(config).catch(() => ({ supported: false }));
    if (!support.supported) {
      missing.push(`this browser cannot decode ${header.video.codec} video${
        header.video.codec.startsWith('hvc1') ? ' (H.265): play the camera\'s H.264 substream' : ''}`);
    } else {
      video = new VideoDecoder({
        output: (frame) => {
          stats.video_decoded++;
          // When it was ready, on the Unix ms clock (a worker's performance clock has an origin
          // of its own): the page's watchdog times it against the sound.
          postMessage({ type: 'frame', frame, decoded_ms: performance.timeOrigin + performance.now() }, [frame]);
        },
        error: (e) => { stats.decode_errors++; video = null; restart(`video decoder: ${e.message}`, 'decoder error'); },
      });
      video.configure(config);
      waitingForKey = true;
    }
  }
  if (header.audio && !audio) {
    const config = { codec: 'opus', sampleRate: header.audio.sample_rate, numberOfChannels: header.audio.channels };
    const support = await AudioDecoder.isConfigSupported(config).catch(() => ({ supported: false }));
    if (support.supported) {
      audio = new AudioDecoder({
        output: onAudio,
        error: (e) => { stats.decode_errors++; audio = null; restart(`audio decoder: ${e.message}`, 'decoder error'); },
      });
      audio.configure(config);
    } else {
      missing.push('this browser cannot decode Opus audio');
    }
  }
  // What can be played plays; what cannot stays said in the card (a reconnection would not help).
  if (missing.length) status('error', missing.join('; '));
  else status('playing');
}

function decodeVideo(key, tsUs, payload) {
  if (!video || video.state !== 'configured') return;
  if (waitingForKey && !key) { stats.video_skipped++; return; }
  if (video.decodeQueueSize > MAX_DECODE_QUEUE && !key) {
    // This device decodes slower than the camera sends: catch up at the next keyframe.
    waitingForKey = true;
    stats.video_skipped++;
    return;
  }
  waitingForKey = false;
  video.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: tsUs, data: payload }));
}

function decodeAudio(tsUs, payload) {
  if (!audio || audio.state !== 'configured') return;
  audio.decode(new EncodedAudioChunk({ type: 'key', timestamp: tsUs, data: payload }));
}

function onAudio(data) {
  const samples = new Float32Array(data.numberOfFrames);
  data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
  const tsUs = data.timestamp;
  data.close();
  stats.audio_decoded++;
  const targetMs = noteLateness(tsUs);
  if (ring) {
    ring.write(samples, tsUs);
    ring.setTargetMs(targetMs);
  } else {
    audioPort.postMessage({ type: 'chunk', samples, ts_us: tsUs }, [samples.buffer]);
    audioPort.postMessage({ type: 'target', ms: targetMs });
  }
}

/**
 * The buffer the audio needs: how much later than its steadiest packets a packet reaches the
 * ring (over the last 5 s), plus a 10 ms margin (at least 20 ms: a busy machine delays the decoder thread too). Shrinks back when a burst leaves the window.
 */
function noteLateness(tsUs) {
  const now = performance.now();
  if (now < settledAt) return stats.target_ms;
  lateness.push([now, now - tsUs / 1000]);
  while (lateness.length && lateness[0][0] < now - JITTER_WINDOW_MS) lateness.shift();
  let min = Infinity;
  let max = -Infinity;
  for (const [, l] of lateness) { min = Math.min(min, l); max = Math.max(max, l); }
  stats.jitter_ms = max - min;
  stats.target_ms = Math.min(MAX_TARGET_MS, Math.max(MIN_TARGET_MS, stats.jitter_ms + 10));
  return stats.target_ms;
}

function noteArrival(list, tsUs) {
  if (originUnixMs === null) return;
  list.push(performance.timeOrigin + performance.now() - (originUnixMs + tsUs / 1000));
  if (list.length > ARRIVALS_KEPT) list.shift();
}

/** The median and largest of the arrivals kept, in ms. */
function arrivalFigures(list) {
  if (!list.length) return null;
  const sorted = [...list].sort((a, b) => a - b);
  return { p50_ms: sorted[Math.floor(sorted.length / 2)], max_ms: sorted[sorted.length - 1] };
}

function closeVideo() {
  if (video && video.state !== 'closed') video.close();
  video = null;
}

function closeDecoders() {
  closeVideo();
  if (audio && audio.state !== 'closed') audio.close();
  audio = null;
}

// Stats: to the page every second, to the server every 2 s (they keep the socket from idling).
let tick = 0;
setInterval(() => {
  stats.audio_arrival = arrivalFigures(arrival.audio);
  stats.video_arrival = arrivalFigures(arrival.video);
  postMessage({ type: 'stats', stats });
  if (++tick % 2 === 0 && socket && socket.readyState === 1) {
    socket.send(JSON.stringify({ type: 'stats', ...stats, ...pageStats }));
  }
}, 1000);

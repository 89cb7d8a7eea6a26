// The lockstep player: a source's media socket decoded in the page (WebCodecs, in a Worker),
// audio played by an AudioWorklet that is the master clock, and each picture drawn when that
// clock reaches it.
//
// The clock: the worklet says which timeline instant starts each render quantum (a context
// frame); `getOutputTimestamp()` says which context frame the device is playing at a given
// performance time — the device's own delay included — so "what is heard now" is known to
// within a render quantum. A picture drawn in this animation frame is shown at the next vsync,
// so it is chosen for that instant: the newest picture not later than what will be heard then
// plus half a refresh (each picture lands on the vsync nearest its instant: ±8 ms at 60 Hz). Late pictures are dropped, early ones wait. Until audio plays (no
// audio track, the context not yet allowed to start), a wall clock stands in.
//
// The watchdog: pictures that reach the page after their sound was due cannot be shown in
// sync; when that persists, it asks the worklet to hold audio back by as much (and lets go of
// it again when pictures come early), counting each correction.

import { AudioRing } from './audio-ring.js';

const STATS_WINDOW = 150; // drawn pictures the offset figures cover (5 s at 30 fps)
const WATCH_EVERY_MS = 2000;
const MAX_QUEUED_FRAMES = 90;
/** Without audio, pictures wait this long after they arrive (the wall clock's buffer). */
const WALL_DELAY_MS = 30;
/** The watchdog ignores pictures this long after a (re)connection, and lateness beyond this. */
const CATCH_UP_MS = 2000;
const MAX_LATE_US = 250000;
const MAX_EXTRA_DELAY_MS = 300;
/** The audio buffer is within this of its target: a previous correction has taken effect. */
const SETTLED_MS = 25;

/**
 * One audio output for every player on the page: one device stream, one audio thread and one
 * clock, however many cameras play (a context each cost a stream and a real-time thread per
 * camera, and the audio service mixed them).
 */
let sharedOutput = null;
function audioOutput() {
  if (!sharedOutput) {
    // The smallest output buffer the device allows: headless Chromium then reports 8 ms of
    // output latency where 'interactive' reports 32 (bench/RESULTS.md).
    const context = new AudioContext({ latencyHint: 0 });
    const ready = context.audioWorklet.addModule('/player/audio-out.js');
    sharedOutput = { context, ready, players: 0 };
  }
  return sharedOutput;
}

/** The page's audio output: 'running', 'suspended' (no player plays) or 'none' (never made). */
export function audioOutputState() {
  return sharedOutput ? sharedOutput.context.state : 'none';
}

export class MediaPlayer {
  /**
   * @param {HTMLCanvasElement} canvas where pictures are drawn
   * @param {string} url the media socket (ws://…/api/media/NAME)
   * @param {{onStatus?, onFirstFrame?, onPresent?, onOnset?}} hooks (functions; onPresent gets
   *   the picture, when it shows, and the clock instant it was chosen for)
   */
  constructor(canvas, url, hooks = {}) {
    this.canvas = canvas;
    this.draw2d = canvas.getContext('2d');
    this.url = url;
    this.hooks = hooks;
    this.queue = [];          // decoded pictures waiting, in timeline order
    this.shown = null;        // the picture on screen
    this.position = null;     // the worklet's last {frame, ts_us, us_per_frame, playing}
    this.header = null;
    this.wall = null;         // {perf, ts} when no audio clock runs
    this.frameIntervalMs = 1000 / 60;
    this.lastTick = null;
    this.frameDurationUs = 33333;
    this.lastFrameTs = null;
    this.offsetsUs = [];      // drawn picture minus heard instant
    this.lateUs = [];         // how late pictures reach the page against the audio clock
    this.extraDelayMs = 0;
    this.watchFrom = Infinity;
    this.counts = { drawn: 0, dropped: 0, corrections: 0, skipped_by_server: 0 };
    this.workerStats = {};
    this.audioStats = {};
    this.muted = true;
    this.running = false;
  }

  async start() {
    this.running = true;
    const output = audioOutput();
    output.players += 1;
    this.output = output;
    this.audio = output.context;
    await output.ready;
    if (!this.running) return;
    // Cross-origin isolated (the server sends COOP/COEP): the decoder writes the ring directly.
    const shared = self.crossOriginIsolated ? new SharedArrayBuffer(AudioRing.bytes()) : null;
    this.node = new AudioWorkletNode(this.audio, 'lockstep-audio-out', {
      numberOfInputs: 0,
      outputChannelCount: [2],
      processorOptions: { shared },
    });
    this.volume = this.audio.createGain();
    this.volume.gain.value = this.muted ? 0 : 1;
    this.node.connect(this.volume).connect(this.audio.destination);
    this.node.port.onmessage = (e) => this.onWorklet(e.data);
    this.worker = new Worker('/player/decoder-worker.js', { type: 'module' });
    this.worker.onmessage = (e) => this.onWorker(e.data);
    let port = null;
    if (!shared) {
      const channel = new MessageChannel();
      this.node.port.postMessage({ type: 'port', port: channel.port1 }, [channel.port1]);
      port = channel.port2;
    }
    this.worker.postMessage({ type: 'start', url: this.url, shared, port }, port ? [port] : []);
    this.audio.resume().catch(() => {});
    this.watch = setInterval(() => this.watchdog(), WATCH_EVERY_MS);
    const tick = (t) => {
      if (!this.running) return;
      this.tick(t);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  stop() {
    this.running = false;
    clearInterval(this.watch);
    if (this.worker) {
      this.worker.postMessage({ type: 'stop' });
      setTimeout(() => this.worker.terminate(), 1000);
    }
    if (this.node) {
      // The context is the page's: only this player's part of it goes.
      this.node.port.postMessage({ type: 'stop' });
      this.node.disconnect();
      this.volume.disconnect();
    }
    if (this.output && --this.output.players === 0) {
      // No player left: the device stream and the audio thread rest until one starts again
      // (`start` resumes the context).
      this.output.context.suspend().catch(() => {});
    }
    this.output = null;
    for (const f of this.queue) f.close();
    this.queue = [];
    if (this.shown) this.shown.close();
    this.shown = null;
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.volume) this.volume.gain.value = muted ? 0 : 1;
    // A click is the gesture a browser wants before it plays sound.
    if (!muted && this.audio) this.audio.resume().catch(() => {});
  }

  onWorker(msg) {
    if (msg.type === 'frame') this.enqueue(msg.frame, msg.decoded_ms - performance.timeOrigin);
    else if (msg.type === 'header') {
      this.header = msg.header;
      if (msg.fresh) {
        this.clear();
        // What comes first is the catch-up from the cached keyframe: old by design.
        this.watchFrom = performance.now() + CATCH_UP_MS;
      }
    } else if (msg.type === 'status') this.hooks.onStatus?.(msg.state, msg.message);
    else if (msg.type === 'skipped') this.counts.skipped_by_server += msg.frames;
    else if (msg.type === 'stats') this.workerStats = msg.stats;
  }

  onWorklet(msg) {
    if (msg.type === 'position') {
      this.position = msg;
      this.audioStats = msg;
    } else if (msg.type === 'onset') {
      const heard = this.performanceTimeOfFrame(msg.frame);
      if (heard !== null) this.hooks.onOnset?.(heard);
    }
  }

  clear() {
    for (const f of this.queue) f.close();
    this.queue = [];
    this.wall = null;
    this.lastFrameTs = null;
  }

  /** A decoded picture, ready at `decodedAt` (performance ms). */
  enqueue(frame, decodedAt) {
    if (this.lastFrameTs !== null && frame.timestamp > this.lastFrameTs) {
      const d = frame.timestamp - this.lastFrameTs;
      if (d < 200000) this.frameDurationUs += (d - this.frameDurationUs) * 0.1;
    }
    this.lastFrameTs = frame.timestamp;
    const heard = performance.now() >= this.watchFrom ? this.heardUs(decodedAt) : null;
    // Far late is a stall or a catch-up (dropped, not steady lateness to make up for).
    if (heard !== null && heard - frame.timestamp < MAX_LATE_US) this.lateUs.push(heard - frame.timestamp);
    this.queue.push(frame);
    while (this.queue.length > MAX_QUEUED_FRAMES) {
      this.queue.shift().close();
      this.counts.dropped++;
    }
  }

  /** The context frame the device plays at performance time `perfMs`, as a context time (s). */
  contextTimeAt(perfMs) {
    const out = this.audio.getOutputTimestamp();
    if (!out.performanceTime) return null;
    return out.contextTime + (perfMs - out.performanceTime) / 1000;
  }

  performanceTimeOfFrame(frame) {
    const out = this.audio.getOutputTimestamp();
    if (!out.performanceTime) return null;
    return out.performanceTime + (frame / this.audio.sampleRate - out.contextTime) * 1000;
  }

  /** The timeline instant (µs) heard at performance time `perfMs`, or null without audio. */
  heardUs(perfMs) {
    const p = this.position;
    if (!p || !p.playing || this.audio.state !== 'running') return null;
    const contextTime = this.contextTimeAt(perfMs);
    if (contextTime === null) return null;
    return p.ts_us + (contextTime * this.audio.sampleRate - p.frame) * p.us_per_frame;
  }

  /** The clock pictures follow at `perfMs`: the audio, else a wall clock on the pictures. */
  clockUs(perfMs) {
    const heard = this.heardUs(perfMs);
    this.clockSource = heard !== null ? 'audio' : 'wall';
    if (heard !== null) {
      this.wall = { perf: perfMs, ts: heard };
      return heard;
    }
    if (!this.wall) {
      if (!this.queue.length) return null;
      this.wall = { perf: perfMs + WALL_DELAY_MS, ts: this.queue[0].timestamp };
    }
    return this.wall.ts + (perfMs - this.wall.perf) * 1000;
  }

  tick(t) {
    if (this.lastTick !== null) {
      const d = t - this.lastTick;
      if (d > 4 && d < 50) this.frameIntervalMs += (d - this.frameIntervalMs) * 0.1;
    }
    this.lastTick = t;
    // Drawn now, shown at the next vsync.
    const displayAt = t + this.frameIntervalMs;
    const clock = this.clockUs(displayAt);
    if (clock === null || !this.queue.length) return;
    // Each picture goes to the vsync nearest its instant: ±half a refresh, centred.
    const grace = (this.frameIntervalMs * 1000) / 2;
    let pick = null;
    while (this.queue.length && this.queue[0].timestamp <= clock + grace) {
      if (pick) {
        pick.close();
        this.counts.dropped++;
      }
      pick = this.queue.shift();
    }
    if (!pick) return;
    this.present(pick, displayAt, clock);
  }

  present(frame, displayAt, clock) {
    if (this.canvas.width !== frame.displayWidth || this.canvas.height !== frame.displayHeight) {
      this.canvas.width = frame.displayWidth;
      this.canvas.height = frame.displayHeight;
    }
    this.draw2d.drawImage(frame, 0, 0, this.canvas.width, this.canvas.height);
    if (this.counts.drawn++ === 0) this.hooks.onFirstFrame?.();
    if (this.clockSource === 'audio') {
      this.offsetsUs.push(frame.timestamp - clock);
      if (this.offsetsUs.length > STATS_WINDOW) this.offsetsUs.shift();
    }
    this.hooks.onPresent?.(frame, displayAt, clock);
    if (this.shown) this.shown.close();
    this.shown = frame;
  }

  /**
   * Pictures that persistently reach the page after their sound was due: hold the audio back
   * by that much; pictures comfortably early: give the delay back, a little at a time.
   */
  watchdog() {
    const late = this.lateUs.sort((a, b) => a - b);
    this.lateUs = [];
    // An increase takes effect as the buffer fills (at most 2 ms/s): wait for it.
    const settled = this.audioStats.target_ms - this.audioStats.fill_ms < SETTLED_MS;
    if (late.length >= 10 && this.position && this.position.playing && settled) {
      const p90Ms = late[Math.floor(late.length * 0.9)] / 1000;
      const frameMs = this.frameDurationUs / 1000;
      let next = this.extraDelayMs;
      if (p90Ms > 0) next = Math.min(MAX_EXTRA_DELAY_MS, this.extraDelayMs + p90Ms + 2);
      else if (p90Ms < -frameMs && this.extraDelayMs > 0) next = Math.max(0, this.extraDelayMs - 5);
      if (next !== this.extraDelayMs) {
        this.extraDelayMs = next;
        this.counts.corrections++;
        this.node.port.postMessage({ type: 'extra_delay', ms: next });
      }
    }
    this.worker.postMessage({ type: 'page_stats', stats: this.stats() });
  }

  /** The player's own figures: its drawn-vs-heard offset, delay behind the source, counts. */
  stats() {
    const sorted = [...this.offsetsUs].sort((a, b) => a - b);
    const ms = (us) => (us === undefined ? null : us / 1000);
    const now = performance.now();
    const heard = this.heardUs(now);
    const origin = this.header ? this.header.origin_unix_us / 1000 : null;
    return {
      clock: heard !== null ? 'audio' : 'wall',
      offset_mean_ms: sorted.length ? ms(sorted.reduce((a, b) => a + b, 0) / sorted.length) : null,
      offset_p50_ms: ms(sorted[Math.floor(sorted.length / 2)]),
      offset_p99_ms: ms(sorted[Math.floor(sorted.length * 0.99)]),
      // How far behind the source's output (its due instants) the sound is heard.
      delay_ms: heard !== null && origin !== null
        ? performance.timeOrigin + now - (origin + heard / 1000) : null,
      extra_delay_ms: this.extraDelayMs,
      output_latency_ms: this.audio ? (this.audio.outputLatency || 0) * 1000 : null,
      queued: this.queue.length,
      ...this.counts,
      underruns: this.audioStats.underruns ?? null,
      concealed_ms: this.audioStats.concealed_ms ?? null,
      audio_fill_ms: this.audioStats.fill_ms ?? null,
      audio_target_ms: this.audioStats.target_ms ?? null,
      audio_least_fill_ms: this.audioStats.least_fill_ms ?? null,
      speed: this.audioStats.speed ?? null,
      cuts: this.audioStats.cuts ?? null,
      jitter_ms: this.workerStats.jitter_ms ?? null,
      // After their due instant: frames reaching the worker (the server's release and the
      // transport; across machines, plus the offset between their clocks).
      audio_arrival: this.workerStats.audio_arrival ?? null,
      video_arrival: this.workerStats.video_arrival ?? null,
      video_decoded: this.workerStats.video_decoded ?? null,
      bad_messages: this.workerStats.bad_messages ?? null,
      decode_errors: this.workerStats.decode_errors ?? null,
      connects: this.workerStats.connects ?? null,
    };
  }

  /** For tests: beep onsets in what the worklet plays, reported through `hooks.onOnset`. */
  measureOnsets(on) {
    this.node.port.postMessage({ type: 'measure', on });
  }
}

// The player's master clock: an AudioWorkletProcessor that plays the ring (audio-ring.js) on the
// audio thread, resampled to the context's rate (48 or 44.1 kHz) by 4-point cubic
// interpolation, and says which timeline instant it is playing.
//
// Buffer: it starts once the ring holds the decoder's jitter target plus one packet, beginning
// at the newest sound that allows (the first start, and after an underrun). From then on what
// is steered is the least fill over the last 30 s — the fill just before the latest packet of
// that span arrived — toward a small margin (plus any delay the video watchdog asks for), by
// playing up to 0.5 % fast or 0.2 % slow (inaudible). The jitter is then counted once, by the
// latest packet itself: steering the least fill to a jitter-sized target would hold the jitter
// twice. The delay shrinks back after a burst leaves the span and never grows without bound; a
// fill more than 80 ms over its target is cut at once (faded in again). When the whole fill
// stands more than 20 ms higher than before (the reader stalled while the decoder went on), the
// older windows are lifted by that step, so the excess goes now and not 30 s later. An underrun fades to
// silence, counts, and waits for the buffer to fill again.
//
// Every 4 render quanta it posts where it is: {frame, ts_us, us_per_frame} — the timeline time
// of the first sample of the quantum that starts at context frame `frame`.

import { AudioRing, RING_RATE_HZ } from './audio-ring.js';
import { median } from '../figures.js';

const PACKET_MS = 20;
const STEER_WINDOW_S = 0.5;
/** The least fill is taken over this many steering windows (30 s). */
const LEAST_FILL_WINDOWS = 60;
/**
 * What the least fill is steered to: the fill is sampled after each render quantum, so the true
 * least is up to a quantum (2.9 ms at 44.1 kHz) lower, and the interpolation reads 2 samples
 * ahead; the rest is for a packet later than any in the last 30 s. Each underrun adds 4 ms (a
 * device that takes its audio in bursts, a machine whose decoder thread wakes late), up to
 * 40 ms, except one in a connection's first second (the device filling its own buffer); 30 s
 * without one takes 1 ms back.
 */
const MARGIN_MS = 8;
const MARGIN_STEP_MS = 4;
const MAX_MARGIN_MS = 40;
const MARGIN_RELAX_WINDOWS = 60;
const MAX_FAST = 0.005;
const MAX_SLOW = 0.002;
const STEER_GAIN = 0.00025; // per ms of excess fill
const CUT_OVER_MS = 80;
/**
 * In the first 10 s after a start, a least fill this far over the decoder's jitter target is
 * cut too (down to that target): what piled up while the device and the decoders warmed up
 * (60–80 ms seen with PulseAudio) would otherwise take half a minute of steering to play off.
 */
const START_CUT_OVER_MS = 20;
const START_WINDOWS = 20;
/**
 * The first windows after a start are the device's and the decoder's warm-up (a first burst
 * that drains the ring to a few ms): steering on them would add their dip to the delay for 30 s.
 */
const SETTLE_WINDOWS = 2;
/** The least fill of this many latest windows (2 s) is compared with the older windows'. */
const RECENT_WINDOWS = 4;
/**
 * A rise of the floor by more than this is delay added at once (a stall, a backlog), played off
 * now. A smaller rise (the server's playout delay coming back down after a busy moment) stays
 * as room for 30 s, as it always did: it is what absorbs that delay going up again.
 */
const FLOOR_STEP_MS = 20;
const FADE_SAMPLES = 64;

class AudioOut extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { shared } = options.processorOptions;
    // Shared with the decoder, or our own, fed by chunks on the port.
    this.ring = new AudioRing(shared || new ArrayBuffer(AudioRing.bytes()));
    this.fedByMessages = !shared;
    this.generation = -1;
    this.index = 0;       // next ring sample (integer part)
    this.frac = 0;        // and fraction
    this.playing = false;
    this.speed = 1;
    this.extraDelayMs = 0;
    this.minFill = Infinity;
    // The least fill (samples) of each recent steering window, plus `steered` at that time.
    this.windowMins = [];
    // Samples consumed beyond the nominal rate by steering and cuts: each past window's least
    // fill, less what was consumed since, is what it would be now (else a past least holds
    // the speed for 30 s after it was made up, and the delay swings).
    this.steered = 0;
    this.leastMs = null;  // the least fill the last steering used (ms), for the stats
    this.marginMs = MARGIN_MS;
    this.calmWindows = 0;   // steering windows since the last underrun
    this.windowFrames = 0;
    this.settleWindows = 0;
    this.warmingUp = false;   // a connection's first start, until it has settled
    this.quanta = 0;
    this.gain = 0;        // fades in after a start, out at an underrun
    this.stats = { underruns: 0, concealed_ms: 0, cuts: 0, played_ms: 0 };
    this.meter = null;    // beep onsets in the output, for tests (`measure` message)
    this.stopped = false;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    // Without a shared ring, the decoder sends on a port of its own.
    if (msg.type === 'port') msg.port.onmessage = (e) => this.onMessage(e.data);
    else if (msg.type === 'chunk' && this.fedByMessages) this.ring.write(msg.samples, msg.ts_us);
    else if (msg.type === 'target' && this.fedByMessages) this.ring.setTargetMs(msg.ms);
    else if (msg.type === 'reset' && this.fedByMessages) this.ring.reset();
    else if (msg.type === 'extra_delay') this.extraDelayMs = msg.ms;
    else if (msg.type === 'measure') this.meter = msg.on ? { loud: false, quiet: 0 } : null;
    else if (msg.type === 'stop') this.stopped = true;
  }

  /** The fill a start waits for: the decoder's jitter target, plus the watchdog's delay. */
  startMs() {
    return Math.max(this.ring.targetMs(), this.marginMs) + this.extraDelayMs + PACKET_MS;
  }

  /** The least fill steered to. */
  targetMs() {
    return this.marginMs + this.extraDelayMs;
  }

  process(inputs, outputs) {
    // Its player left: the node is dropped (the context plays on for the other cameras).
    if (this.stopped) return false;
    const out = outputs[0];
    const n = out[0].length;
    const channel = out[0];
    const generation = this.ring.generation();
    if (generation !== this.generation) {
      // A new timeline: start from its beginning, buffering again.
      this.generation = generation;
      this.index = this.ring.baseIndex();
      this.frac = 0;
      this.playing = false;
      this.speed = 1;
      this.minFill = Infinity;
      this.windowMins = [];
      this.warmingUp = true;
    }
    const step = (RING_RATE_HZ / sampleRate) * this.speed;
    let available = this.ring.available(this.index);
    const fillMs = available / (RING_RATE_HZ / 1000);
    if (!this.playing && fillMs >= this.startMs()) {
      // Start at the newest sound the buffer target allows: what piled up while waiting (the
      // context starting, a stall) is not worth its delay.
      const keep = Math.round(this.startMs() * RING_RATE_HZ / 1000);
      this.index = (this.index + available - keep) | 0;
      this.frac = 0;
      available = keep;
      this.playing = true;
      this.gain = 0;
      this.settleWindows = SETTLE_WINDOWS;
    }
    const startUs = this.ring.timeAt(this.index) + this.frac * 1e6 / RING_RATE_HZ;
    let produced = 0;
    if (this.playing) {
      // Cubic interpolation reads one sample behind and two ahead.
      const canMake = Math.max(0, Math.floor((available - 3 - this.frac) / step));
      produced = Math.min(n, canMake);
      for (let i = 0; i < produced; i++) {
        const x = this.frac;
        const i0 = this.index;
        const ym1 = this.ring.sample(i0 - 1);
        const y0 = this.ring.sample(i0);
        const y1 = this.ring.sample(i0 + 1);
        const y2 = this.ring.sample(i0 + 2);
        const c1 = 0.5 * (y1 - ym1);
        const c2 = ym1 - 2.5 * y0 + 2 * y1 - 0.5 * y2;
        const c3 = 0.5 * (y2 - ym1) + 1.5 * (y0 - y1);
        if (this.gain < 1) this.gain = Math.min(1, this.gain + 1 / FADE_SAMPLES);
        channel[i] = (((c3 * x + c2) * x + c1) * x + y0) * this.gain;
        const next = this.frac + step;
        const whole = Math.floor(next);
        this.index = (this.index + whole) | 0;
        this.frac = next - whole;
      }
      this.steered += produced * (step - RING_RATE_HZ / sampleRate);
      if (produced < n) {
        // Underrun: fade what is left of the last sample to silence, then buffer again.
        let last = produced ? channel[produced - 1] : 0;
        for (let i = produced; i < n; i++) {
          last *= 0.9;
          channel[i] = last;
        }
        this.playing = false;
        this.windowMins = [];
        // The device's first take after a connection's start (its own buffer filling at
        // once) says nothing of the jitter: it does not raise the margin for minutes.
        if (!(this.warmingUp && this.settleWindows > 0)) {
          this.marginMs = Math.min(MAX_MARGIN_MS, this.marginMs + MARGIN_STEP_MS);
          this.calmWindows = 0;
        }
        this.warmingUp = false;
        this.stats.underruns++;
      }
      available = this.ring.available(this.index);
      this.ring.release(this.index - 2);
    } else {
      channel.fill(0);
    }
    if (!this.playing) this.stats.concealed_ms += ((n - produced) / sampleRate) * 1000;
    this.stats.played_ms += (produced / sampleRate) * 1000;
    for (let c = 1; c < out.length; c++) out[c].set(channel);
    if (this.playing) this.steer(available, n);
    if (this.meter) this.detectOnsets(channel, produced);
    if (++this.quanta % 4 === 0) {
      this.port.postMessage({
        type: 'position',
        playing: this.playing && produced > 0,
        frame: currentFrame,
        ts_us: startUs,
        us_per_frame: (step * 1e6) / RING_RATE_HZ,
        fill_ms: fillMs,
        target_ms: this.targetMs(),
        least_fill_ms: this.leastMs,
        speed: this.speed,
        ...this.stats,
      });
    }
    return true;
  }

  /** Moves the least fill of the last 30 s toward the target. */
  steer(available, n) {
    this.minFill = Math.min(this.minFill, available);
    this.windowFrames += n;
    if (this.windowFrames < STEER_WINDOW_S * sampleRate) return;
    if (this.settleWindows > 0) {
      if (--this.settleWindows === 0) this.warmingUp = false;
      this.minFill = Infinity;
      this.windowFrames = 0;
      return;
    }
    this.windowMins.push(this.minFill + this.steered);
    if (this.windowMins.length > LEAST_FILL_WINDOWS) this.windowMins.shift();
    this.liftOlderWindows();
    if (++this.calmWindows % MARGIN_RELAX_WINDOWS === 0 && this.marginMs > MARGIN_MS) {
      this.marginMs = Math.max(MARGIN_MS, this.marginMs - 1);
    }
    // Once per window, not per quantum: the stats post what this steering saw.
    this.leastMs = this.leastFillMs();
    const excessMs = this.leastMs - this.targetMs();
    // Early on, the least fill has not yet seen the jitter: a start cut keeps the decoder's
    // jitter target, and looks at the last 2 s only (what piles up comes after the first
    // windows: the decoders catching up from the keyframe, the device starting).
    const starting = this.windowMins.length <= START_WINDOWS;
    const cutMs = starting
      ? this.leastFillMs(RECENT_WINDOWS) - Math.max(this.ring.targetMs(), this.targetMs())
      : excessMs;
    if (cutMs > (starting ? START_CUT_OVER_MS : CUT_OVER_MS)) {
      // Far behind (the tab was in the background, a long stall, the start): skip ahead,
      // faded in.
      const cut = Math.round(cutMs * RING_RATE_HZ / 1000);
      this.index = (this.index + cut) | 0;
      this.steered += cut;
      this.gain = 0;
      this.stats.cuts++;
    }
    this.speed = 1 + Math.max(-MAX_SLOW, Math.min(MAX_FAST, excessMs * STEER_GAIN));
    this.minFill = Infinity;
    this.windowFrames = 0;
  }

  /**
   * When the least fill of the last 2 s stands above the typical least of the windows before by
   * more than 20 ms, delay was added at once (the reader stalled while the decoder went on, a
   * backlog came in one piece): those windows measured a floor that is gone, and they are lifted
   * by the step, their dips with them. A lone dip (a late packet) does not move the median, so
   * the jitter it showed is still remembered.
   */
  liftOlderWindows() {
    const older = this.windowMins.length - RECENT_WINDOWS;
    if (older < RECENT_WINDOWS) return;
    const recentLeast = Math.min(...this.windowMins.slice(older));
    const step = recentLeast - median(this.windowMins.slice(0, older));
    if (step <= FLOOR_STEP_MS * RING_RATE_HZ / 1000) return;
    for (let i = 0; i < older; i++) this.windowMins[i] += step;
  }

  /** The least fill of the last `windows` (all: 30 s), as it stands after the steering since. */
  leastFillMs(windows = LEAST_FILL_WINDOWS) {
    if (!this.windowMins.length) return null;
    return (Math.min(...this.windowMins.slice(-windows)) - this.steered) / (RING_RATE_HZ / 1000);
  }

  /** For the tests' meter: the context frame of each beep onset in what is played. */
  detectOnsets(channel, produced) {
    const m = this.meter;
    for (let i = 0; i < produced; i++) {
      const loud = Math.abs(channel[i]) > 0.1;
      if (loud && !m.loud) {
        this.port.postMessage({ type: 'onset', frame: currentFrame + i });
        m.loud = true;
      }
      if (loud) m.quiet = 0;
      else if (m.loud && ++m.quiet > sampleRate / 20) m.loud = false;
    }
  }
}

registerProcessor('lockstep-audio-out', AudioOut);

// Measures what the lockstep player presents and plays, for beep-flash sources: each picture as
// it is drawn (a flash is a bright picture; the stripe says when it was captured), timed at the
// vsync that shows it; each beep onset in the samples leaving the worklet, timed by the audio
// context's output timestamp (the device's delay included). Offsets are audio minus video
// (positive: audio late).
//
// Precision: pictures are shown on the display's refresh grid and taken to appear one
// refresh after the animation frame that drew them (±8 ms at 60 Hz, as headless Chromium runs);
// an onset is within a render quantum (2.7 ms at 48 kHz) and the output timestamp's own
// accuracy (the device's reported delay).

import { PatternProbe } from '../pattern-probe.js';
import { median, summary } from '../figures.js';

export class PlayerMeter {
  constructor(player) {
    this.player = player;
    this.probe = new PatternProbe();
    this.flashes = [];        // [shown at (performance ms), capture Unix ms or null]
    this.beeps = [];          // heard at (performance ms)
    this.videoLatency = [];
    this.lastBright = false;
    this.presented = 0;
    this.presents = [];       // [shown at, picture minus clock (ms)] of each picture
    this.blockEnds = [];      // when each block of a busy page ended (performance ms)
  }

  start() {
    this.player.hooks.onPresent = (frame, shownAt, clockUs) => this.onPresent(frame, shownAt, clockUs);
    this.player.hooks.onOnset = (heardAt) => this.beeps.push(heardAt);
    this.player.measureOnsets(true);
    this.startStats = this.player.stats();
  }

  stop() {
    this.stoppedAt = performance.now();
    this.player.hooks.onPresent = null;
    this.player.hooks.onOnset = null;
    this.player.measureOnsets(false);
  }

  /** The page's main thread was blocked until now (the heavy-UI test). */
  noteBlockEnd() {
    this.blockEnds.push(performance.now());
  }

  onPresent(frame, shownAt, clockUs) {
    this.presented++;
    this.presents.push([shownAt, (frame.timestamp - clockUs) / 1000]);
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    const bright = this.probe.bright(frame, w, h);
    const capture = this.probe.captureMs(frame, w, h);
    if (capture !== null) this.videoLatency.push(performance.timeOrigin + shownAt - capture);
    if (bright && !this.lastBright) this.flashes.push([shownAt, capture]);
    this.lastBright = bright;
  }

  report() {
    const offsets = [];
    const audioLatency = [];
    for (const [shown, capture] of this.flashes) {
      let best = null;
      for (const b of this.beeps) {
        if (Math.abs(b - shown) < 500 && (best === null || Math.abs(b - shown) < Math.abs(best - shown))) best = b;
      }
      if (best === null) continue;
      offsets.push(best - shown);
      if (capture !== null) audioLatency.push(performance.timeOrigin + best - capture);
    }
    // After each block, the first picture shown is the one the clock is at (within a frame):
    // the pictures that came meanwhile are skipped, not played through late.
    const frameMs = this.player.frameDurationUs / 1000;
    // (A block that ended just before the meter stopped has no picture after it to judge.)
    const judged = this.blockEnds.filter((end) => end < this.stoppedAt - 100);
    let recovered = 0;
    for (const end of judged) {
      const first = this.presents.find(([shownAt]) => shownAt > end);
      if (first && Math.abs(first[1]) <= frameMs) recovered++;
    }
    const end = this.player.stats();
    return {
      presented: this.presented,
      flashes: this.flashes.length,
      beeps: this.beeps.length,
      // Each onset as heard, on the Unix clock (ms): for a cross-check against a real sink.
      beeps_unix_ms: this.beeps.map((b) => performance.timeOrigin + b),
      offsets_ms: offsets,
      ...summary(offsets),
      video_latency_p50_ms: median(this.videoLatency),
      audio_latency_p50_ms: median(audioLatency),
      stripes_read: this.videoLatency.length,
      blocks: judged.length,
      recovered_within_a_frame: recovered,
      // What the player counted over the run.
      dropped: end.dropped - this.startStats.dropped,
      drawn: end.drawn - this.startStats.drawn,
      underruns: end.underruns - this.startStats.underruns,
      corrections: end.corrections - this.startStats.corrections,
      player: end,
    };
  }
}

// Measures lip sync on what the page really renders and plays, for beep-flash sources (the
// simulated cameras, whose beep and flash share one capture instant).
//
// Video: each rendered frame is drawn to a canvas (a flash is a bright picture), timed by
// requestVideoFrameCallback's expected display time. The receiver's video playout clock
// (getStats `estimatedPlayoutTimestamp`: the capture time, on the sender-report timeline, of
// what is shown now) gives the flash's capture instant.
// Audio, two ways:
//  - played: the receiver's audio playout clock (the capture time of the sample being played
//    now) says when that capture instant is heard;
//  - tapped: an AudioWorklet on the received track detects each beep onset, timed by the audio
//    context's output timestamp. The tap sits behind a FIFO of its own in Chromium
//    (MediaStreamAudioSourceNode), so its figure includes that FIFO's delay (tens of ms);
//    it proves the beep is really there and really lines up, to within that delay.
// Offsets are audio minus video (positive: audio late).
//
// Precision: video is presented on the display's refresh grid (±8 ms at 60 Hz, as headless
// Chromium does); the playout clock is sampled every 50 ms and interpolated (±1 ms); a tapped
// onset is within one 128-sample render quantum (2.7 ms at 48 kHz).

import { PatternProbe } from './pattern-probe.js';
import { median, summary } from './figures.js';

const NTP_UNIX_OFFSET_MS = 2208988800000;

export class SyncMeter {
  constructor(video, stream, pc) {
    this.video = video;
    this.stream = stream;
    this.pc = pc;
    this.flashes = [];   // performance.now() ms of frames that turned bright
    // [performance.now() ms, capture time (same domain) of what plays then], per kind
    this.playout = { audio: [], video: [] };
    this.beeps = [];     // performance.now() ms of beep onsets as heard
    this.framesRendered = 0;
    this.audioEnergy = 0;
    this.lastBright = false;
    this.videoLatency = []; // ms from capture (the stripe's wallclock) to display
    this.flashCaptureMs = []; // Unix ms of each flash's capture, from its stripe (or null)
    this.probe = new PatternProbe();
  }

  async start() {
    this.audio = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
    // Its own file: the UI's Content-Security-Policy runs scripts from the server only.
    await this.audio.audioWorklet.addModule('/beep-onset.js');
    const tracks = this.stream.getAudioTracks();
    if (tracks.length) {
      const source = this.audio.createMediaStreamSource(new MediaStream([tracks[0]]));
      const node = new AudioWorkletNode(this.audio, 'beep-onset');
      node.port.onmessage = (e) => this.onAudio(e.data);
      source.connect(node).connect(this.audio.destination);
    }
    await this.audio.resume();
    const onFrame = (now, meta) => {
      this.onFrame(meta);
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
    this.poll = setInterval(() => this.samplePlayout(), 50);
  }

  stop() {
    clearInterval(this.poll);
  }

  /** One sample of the audio playout clock, if the page has the peer connection. */
  async samplePlayout() {
    if (!this.pc) return;
    const stats = await this.pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.estimatedPlayoutTimestamp) {
        // Both NTP ms (since 1900) → performance.now() domain.
        const capture = r.estimatedPlayoutTimestamp - NTP_UNIX_OFFSET_MS - performance.timeOrigin;
        this.playout[r.kind].push([r.timestamp - performance.timeOrigin, capture]);
      }
    });
  }

  onAudio(msg) {
    if (msg.energy !== undefined) { this.audioEnergy += msg.energy; return; }
    // Context time → performance time, then on to the speaker.
    const stamp = this.audio.getOutputTimestamp();
    const latency = (this.audio.outputLatency || 0) + (this.audio.baseLatency || 0);
    const ms = stamp.performanceTime + (msg.onset - stamp.contextTime + latency) * 1000;
    this.beeps.push(ms);
  }

  onFrame(meta) {
    this.framesRendered++;
    const v = this.video;
    const bright = this.probe.bright(v, v.videoWidth, v.videoHeight);
    const capture = this.probe.captureMs(v, v.videoWidth, v.videoHeight);
    if (capture !== null) {
      this.videoLatency.push(performance.timeOrigin + meta.expectedDisplayTime - capture);
    }
    if (bright && !this.lastBright) {
      this.flashes.push(meta.expectedDisplayTime);
      this.flashCaptureMs.push(capture);
    }
    this.lastBright = bright;
  }

  /** Pairs each flash with the beep nearest to it (within 500 ms): offsets in ms. */
  offsets() {
    const out = [];
    for (const f of this.flashes) {
      let best = null;
      for (const b of this.beeps) {
        if (Math.abs(b - f) < 500 && (best === null || Math.abs(b - f) < Math.abs(best - f))) best = b;
      }
      if (best !== null) out.push(best - f);
    }
    return out;
  }

  /** For each rendered flash, when the audio playout clock plays its capture instant. */
  playedOffsets() {
    const out = [];
    this.audioLatency = [];
    for (const [i, shown] of this.flashes.entries()) {
      // Playout clocks advance 1:1 with time: average each over its samples within ±1 s.
      const near = (kind) => this.playout[kind].filter(([t]) => Math.abs(t - shown) < 1000);
      const video = near('video');
      const audio = near('audio');
      if (video.length < 3 || audio.length < 3) continue;
      const capture = video.reduce((sum, [t, c]) => sum + c + (shown - t), 0) / video.length;
      const heard = audio.reduce((sum, [t, c]) => sum + t + (capture - c), 0) / audio.length;
      out.push(heard - shown);
      const captured = this.flashCaptureMs[i];
      if (captured) this.audioLatency.push(performance.timeOrigin + heard - captured);
    }
    return out;
  }

  report() {
    const offsets = this.playedOffsets();
    const tapped = this.offsets();
    return {
      frames_rendered: this.framesRendered,
      audio_energy: this.audioEnergy,
      flashes: this.flashes.length,
      playout_samples: this.playout.audio.length + this.playout.video.length,
      beeps: this.beeps.length,
      offsets_ms: offsets,
      ...summary(offsets),
      tapped_offsets_ms: tapped,
      tapped: summary(tapped),
      // Each rendered flash on the Unix clock (ms): for a cross-check against a real sink.
      flashes_unix_ms: this.flashes.map((f) => performance.timeOrigin + f),
      // Capture (the camera's wallclock in the stripe) → shown / played, on this machine.
      video_latency_p50_ms: median(this.videoLatency),
      audio_latency_p50_ms: median(this.audioLatency),
      stripes_read: this.videoLatency.length,
    };
  }
}

// Measures lip sync on what the page really renders and plays, for beep-flash sources (the
// simulated cameras): each rendered video frame's luma (drawn to a canvas, timed by
// requestVideoFrameCallback's expected display time) and each played audio block's energy
// (an AudioWorklet on the received track, timed by the audio context's output timestamp plus its
// output latency). A flash and the beep that starts within ±500 ms of it form one event; the
// offset is audio minus video (positive: audio late).
//
// Precision: video is presented on the display's refresh grid (±8 ms at 60 Hz, as headless
// Chromium does); audio onset within one 128-sample render quantum (2.7 ms at 48 kHz).

const WORKLET = `
class BeepOnset extends AudioWorkletProcessor {
  constructor() { super(); this.loud = false; this.quiet = 0; }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (input) {
      for (let i = 0; i < input.length; i++) {
        const loud = Math.abs(input[i]) > 0.1;
        if (loud && !this.loud) {
          this.port.postMessage({ onset: currentTime + i / sampleRate });
          this.loud = true;
        }
        if (loud) this.quiet = 0;
        else if (this.loud && ++this.quiet > sampleRate / 20) this.loud = false;
      }
      let energy = 0;
      for (let i = 0; i < input.length; i++) energy += input[i] * input[i];
      this.port.postMessage({ energy });
    }
    return true;
  }
}
registerProcessor('beep-onset', BeepOnset);
`;

export class SyncMeter {
  constructor(video, stream) {
    this.video = video;
    this.stream = stream;
    this.flashes = [];   // performance.now() ms of frames that turned bright
    this.beeps = [];     // performance.now() ms of beep onsets as heard
    this.framesRendered = 0;
    this.audioEnergy = 0;
    this.lastBright = false;
    this.canvas = document.createElement('canvas');
    this.canvas.width = 32;
    this.canvas.height = 18;
    this.ctx2d = this.canvas.getContext('2d', { willReadFrequently: true });
  }

  async start() {
    this.audio = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
    const url = URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' }));
    await this.audio.audioWorklet.addModule(url);
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
    // The picture below the stripe (the stripe is the top 24 rows of 360).
    const v = this.video;
    const top = Math.round(v.videoHeight * 0.2);
    this.ctx2d.drawImage(v, 0, top, v.videoWidth, v.videoHeight - top, 0, 0, 32, 18);
    const px = this.ctx2d.getImageData(0, 0, 32, 18).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum += px[i + 1];
    const bright = sum / (px.length / 4) > 128;
    if (bright && !this.lastBright) this.flashes.push(meta.expectedDisplayTime);
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

  report() {
    const offsets = this.offsets();
    const sorted = [...offsets].sort((a, b) => a - b);
    const mean = offsets.reduce((a, b) => a + b, 0) / (offsets.length || 1);
    return {
      frames_rendered: this.framesRendered,
      audio_energy: this.audioEnergy,
      flashes: this.flashes.length,
      beeps: this.beeps.length,
      offsets_ms: offsets,
      mean_ms: offsets.length ? mean : null,
      p50_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
      max_abs_ms: sorted.length ? Math.max(...sorted.map(Math.abs)) : null,
    };
  }
}

// The sync meter's AudioWorklet (sync-meter.js): on the received audio track, the instant of each
// beep onset (audio clock) and the energy of every render quantum.
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

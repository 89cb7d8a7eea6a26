// The player's audio output (web/player/audio-out.js) in Node, on a simulated clock: no browser,
// no device, only its steering. A decoder writes 20 ms packets into the ring as they arrive;
// a device takes its render quanta on time, a few at a time. The cases:
//  - the reader stalls 200 ms while the packets go on (a busy audio thread, a backlog arriving
//    at once): the delay this added must be gone within 10 s, not held for the 30 s the least
//    fill remembers; 150 ms piling up 2 s after the start must be gone within the start's 10 s;
//  - one packet comes 8 ms late, then again 20 s later: the buffer must remember the first for
//    30 s (the room it made is kept), so the second plays without an underrun;
//  - with 30 ms of room held, one packet comes 25 ms late: a dip deeper than a stall's step,
//    whose room must be remembered all the same;
//  - the device takes 40 ms at once when the sound starts: the underrun this makes does not
//    raise the margin.
//
//   node web/tests/audio_out_steering.mjs
// Prints one JSON object and exits 0, or prints why and exits 1.

/** Prints the failure with what was measured, and exits 1. */
function fail(message, measured) {
  console.log(JSON.stringify({ ...measured, ok: false, message }));
  process.exit(1);
}

const RATE_HZ = 48000;
const QUANTUM = 128;
const PACKET_SAMPLES = 960; // 20 ms

// What an AudioWorkletGlobalScope gives the processor.
globalThis.sampleRate = RATE_HZ;
globalThis.currentFrame = 0;
globalThis.AudioWorkletProcessor = class {
  constructor() {
    this.port = { postMessage: (m) => { if (m.type === 'position') this.lastPosition = m; } };
  }
};
let Processor = null;
globalThis.registerProcessor = (_name, cls) => { Processor = cls; };
await import('../player/audio-out.js');
const { AudioRing } = await import('../player/audio-ring.js');

/**
 * Runs `secs` of simulated time. `lateMs(k)`: how late packet k arrives (in order: a late packet
 * holds back those behind it, as on TCP). `stall`: [from s, ms] the reader does not run.
 * `burstQuanta`: render quanta the device takes at once; `prefillQuanta`: taken at once when the
 * sound first starts (a device filling its own buffer); `extraDelayMs`: what the video
 * watchdog asks the buffer to hold.
 * Returns the delay (ms, device time minus the timeline time being played) sampled at every
 * burst, and the processor's counts.
 */
function simulate(secs, lateMs, { stall = null, burstQuanta = 4, prefillQuanta = 0, extraDelayMs = 0 } = {}) {
  const buffer = new SharedArrayBuffer(AudioRing.bytes());
  const ring = new AudioRing(buffer);
  const out = new Processor({ processorOptions: { shared: buffer } });
  if (extraDelayMs) out.onMessage({ type: 'extra_delay', ms: extraDelayMs });
  const outputs = [[new Float32Array(QUANTUM), new Float32Array(QUANTUM)]];
  const delays = [];
  const samples = new Float32Array(PACKET_SAMPLES).fill(0.01);
  let k = 0;
  let lastArrivalMs = 0;
  let readerFrame = 0;
  const burstMs = (burstQuanta * QUANTUM * 1000) / RATE_HZ;
  for (let nowMs = 0; nowMs < secs * 1000; nowMs += 0.5) {
    // Packet k holds [20k, 20k + 20) ms and can leave once its last sample is in.
    while (true) {
      const arrivalMs = Math.max(lastArrivalMs, (k + 1) * 20 + lateMs(k));
      if (arrivalMs > nowMs) break;
      ring.write(samples, k * 20000);
      ring.setTargetMs(20);
      lastArrivalMs = arrivalMs;
      k++;
    }
    const stalled = stall && nowMs >= stall[0] * 1000 && nowMs < stall[0] * 1000 + stall[1];
    if (stalled) continue;
    // The device asks for a burst whenever its clock has passed one (after a stall, at once:
    // it lost that time, the ring did not).
    const dueFrame = Math.floor((nowMs / burstMs)) * burstQuanta * QUANTUM;
    if (readerFrame <= dueFrame) {
      const behind = readerFrame < dueFrame - burstQuanta * QUANTUM;
      if (behind) readerFrame = dueFrame; // a device resumes at its own clock, not where it stopped
      const wasPlaying = out.playing;
      for (let q = 0; q < burstQuanta; q++) {
        globalThis.currentFrame = readerFrame;
        out.process([], outputs);
        readerFrame += QUANTUM;
      }
      if (!wasPlaying && out.playing) {
        for (let q = 0; q < prefillQuanta; q++) out.process([], outputs);
        prefillQuanta = 0;
      }
      if (out.playing) {
        delays.push([nowMs, nowMs - ring.timeAt(out.index) / 1000]);
      }
    }
  }
  return { delays, stats: out.stats, position: out.lastPosition };
}

function medianDelay(delays, fromS, toS) {
  const v = delays.filter(([t]) => t >= fromS * 1000 && t < toS * 1000).map(([, d]) => d).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

const result = { ok: true };

// A stall of the reader.
{
  const { delays, stats } = simulate(32, () => 0, { stall: [12, 200] });
  const before = medianDelay(delays, 10, 12);
  const after = medianDelay(delays, 20, 22); // 8 s after the stall
  result.stall = { before_ms: before, after_stall_ms: medianDelay(delays, 12.5, 13), after_8s_ms: after, ...stats };
  if (!(after - before < 5)) {
    fail(`a 200 ms stall still adds ${(after - before).toFixed(1)} ms of delay 8 s later`, result);
  }
}

// 150 ms piling up 2 s after the start (the decoders catching up from the keyframe, the device
// starting late): gone within the start's 10 s, not steered off over a minute.
{
  const { delays, stats } = simulate(10, () => 0, { stall: [2, 150] });
  result.start_pile_up = { at_3s_ms: medianDelay(delays, 3, 3.5), at_9s_ms: medianDelay(delays, 9, 10), ...stats };
  if (!(result.start_pile_up.at_9s_ms < 60)) {
    fail(`150 ms piled up at the start still plays ${result.start_pile_up.at_9s_ms.toFixed(1)} ms late 7 s later`, result);
  }
}

// One packet 8 ms late at 15 s: the least fill dips, the steering adds that much to the delay,
// and it must hold it while the dip is in the 30 s span (a second late packet then finds room).
// The device takes one quantum at a time here: its bursts would hide such a small lateness.
{
  const late = (k) => (k === 750 || k === 1750 ? 8 : 0);
  const { delays, stats } = simulate(40, late, { burstQuanta: 1 });
  const before = medianDelay(delays, 12, 15);
  const kept = medianDelay(delays, 30, 35) - before;
  result.late_packets = { before_ms: before, kept_ms: kept, ...stats };
  if (!(kept > 5)) fail(`the delay a late packet needed was given back after ${kept.toFixed(1)} ms`, result);
  if (stats.underruns > 0) fail(`${stats.underruns} underruns with packets 8 ms late`, result);
}

// The same with more room held (the video watchdog asks for 30 ms): a packet 25 ms late dips
// the fill by more than the 20 ms a stall must add, without an underrun. Two seconds later the
// fill is back where it was: that is no step up of the floor, and the dip's room must still be
// kept (a lift that compared with the least of the older windows, not their median, forgets it).
{
  const late = (k) => (k === 750 ? 25 : 0);
  const { delays, stats } = simulate(40, late, { burstQuanta: 1, extraDelayMs: 30 });
  const before = medianDelay(delays, 12, 15);
  const kept = medianDelay(delays, 30, 35) - before;
  result.late_packet_with_room = { before_ms: before, kept_ms: kept, ...stats };
  if (stats.underruns > 0) fail(`${stats.underruns} underruns with 30 ms of room for a 25 ms late packet`, result);
  if (!(kept > 15)) fail(`the delay a 25 ms late packet needed was given back after ${kept.toFixed(1)} ms`, result);
}

// A device that takes 40 ms at once when the sound starts: one underrun, which must not raise
// the margin (and so the delay) for the minutes it takes to come back down.
{
  const { stats, position } = simulate(10, () => 0, { prefillQuanta: 16 });
  result.start = { target_ms: position.target_ms, ...stats };
  if (stats.underruns !== 1) fail(`the device's first take made ${stats.underruns} underruns, not one`, result);
  if (position.target_ms !== 8) fail(`the start's underrun raised the margin to ${position.target_ms} ms`, result);
}

console.log(JSON.stringify(result));

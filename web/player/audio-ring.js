// The decoded audio between the decoder (a Worker, the writer) and the output (an AudioWorklet,
// the reader): 48 kHz mono samples in a ring, each at a known place on the source's output
// timeline. Backed by a SharedArrayBuffer when the page is cross-origin isolated (the writer and
// the reader share it, no thread in between), else by a plain buffer inside the worklet, fed
// by messages from the worker.
//
// The writer keeps the ring contiguous in time: a gap (a lost packet) is filled with silence, an
// overlap is trimmed, and a jump (a new connection, a restart) starts a new generation that the
// reader follows at once. So the time of sample index i is base_us + (i - base_index) / 48 kHz.
// Indices count samples written since the start, as wrapping 32-bit integers.

export const RING_RATE_HZ = 48000;
const CAPACITY = 1 << 17; // 2.7 s
const SAMPLE_US = 1e6 / RING_RATE_HZ;
/** A timestamp this far off the ring's continuation is a gap or overlap to repair. */
const TOLERANCE_US = 2000;
/** Beyond this (or backwards beyond the tolerance) it is a new timeline: a new generation. */
const MAX_GAP_US = 500000;

// Int32 control words.
const WRITE = 0;
const READ = 1;
const GENERATION = 2;
const TARGET_US = 3; // the reader's buffer target, set by the writer from measured jitter
const CONTROL_WORDS = 4;
// Float64 words: where the current generation starts.
const BASE_US = 0;
const BASE_INDEX = 1;

export class AudioRing {
  static bytes() {
    return CONTROL_WORDS * 4 + 2 * 8 + CAPACITY * 4;
  }

  /** A ring on `buffer` (a SharedArrayBuffer or an ArrayBuffer of `AudioRing.bytes()`). */
  constructor(buffer) {
    this.control = new Int32Array(buffer, 0, CONTROL_WORDS);
    this.base = new Float64Array(buffer, CONTROL_WORDS * 4, 2);
    this.data = new Float32Array(buffer, CONTROL_WORDS * 4 + 16, CAPACITY);
    this.started = false;
  }

  // ---- writer ----

  /** Appends `samples` whose first sample is at `tsUs` on the timeline. */
  write(samples, tsUs) {
    const write = Atomics.load(this.control, WRITE);
    let skip = 0;
    if (!this.started) {
      this.newGeneration(write, tsUs);
    } else {
      const gapUs = tsUs - this.timeAt(write);
      if (gapUs > MAX_GAP_US || gapUs < -MAX_GAP_US) {
        this.newGeneration(write, tsUs);
      } else if (gapUs > TOLERANCE_US) {
        this.append(null, Math.round(gapUs / SAMPLE_US)); // lost audio: silence in its place
      } else if (gapUs < -TOLERANCE_US) {
        skip = Math.min(samples.length, Math.round(-gapUs / SAMPLE_US));
      }
    }
    if (skip < samples.length) this.append(samples.subarray(skip), samples.length - skip);
  }

  /** Writes n samples (or n zeros); a ring the reader does not drain starts over. */
  append(samples, n) {
    let write = Atomics.load(this.control, WRITE);
    const read = Atomics.load(this.control, READ);
    if (((write - read) | 0) + n > CAPACITY) {
      // The reader stopped (the context is suspended): what it has not read is stale.
      this.newGeneration(write, this.timeAt(write));
    }
    for (let i = 0; i < n; i++) {
      this.data[(write + i) & (CAPACITY - 1)] = samples ? samples[i] : 0;
    }
    write = (write + n) | 0;
    Atomics.store(this.control, WRITE, write);
  }

  newGeneration(index, tsUs) {
    this.base[BASE_US] = tsUs;
    this.base[BASE_INDEX] = index;
    this.started = true;
    Atomics.add(this.control, GENERATION, 1);
  }

  /** The next connection's timeline is unrelated to this one's. */
  reset() {
    this.started = false;
  }

  setTargetMs(ms) {
    Atomics.store(this.control, TARGET_US, Math.round(ms * 1000));
  }

  // ---- both ----

  timeAt(index) {
    return this.base[BASE_US] + ((index - this.base[BASE_INDEX]) | 0) * SAMPLE_US;
  }

  // ---- reader ----

  generation() {
    return Atomics.load(this.control, GENERATION);
  }

  /** The first index of the current generation (read it after `generation()`). */
  baseIndex() {
    return this.base[BASE_INDEX];
  }

  targetMs() {
    return Atomics.load(this.control, TARGET_US) / 1000;
  }

  /** Samples written and not yet read, counted from `index`. */
  available(index) {
    return (Atomics.load(this.control, WRITE) - index) | 0;
  }

  sample(index) {
    return this.data[index & (CAPACITY - 1)];
  }

  /** The reader is done with everything before `index`. */
  release(index) {
    Atomics.store(this.control, READ, index | 0);
  }
}

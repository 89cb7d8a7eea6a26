// Reads the beep-flash test pattern (crates/media/src/pattern.rs) off a picture: whether it is
// a flash (the picture below the stripe is bright) and the capture wallclock coded in its stripe.
// Used by the sync meters of both players (sync-meter.js, player/player-meter.js).

export class PatternProbe {
  constructor() {
    this.small = document.createElement('canvas');
    this.small.width = 32;
    this.small.height = 18;
    this.smallCtx = this.small.getContext('2d', { willReadFrequently: true });
    this.stripe = document.createElement('canvas');
    this.stripeCtx = this.stripe.getContext('2d', { willReadFrequently: true });
  }

  /** The picture below the stripe (the top fifth) is bright: a flash. */
  bright(source, width, height) {
    const top = Math.round(height * 0.2);
    this.smallCtx.drawImage(source, 0, top, width, height - top, 0, 0, 32, 18);
    const px = this.smallCtx.getImageData(0, 0, 32, 18).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum += px[i + 1];
    return sum / (px.length / 4) > 128;
  }

  /**
   * The capture wallclock (Unix ms) in the picture's stripe: 4 rows of 16 px, 24 cells each,
   * 96 bits = frame index (32) + capture µs (56) + CRC-8 (poly 0x07, init 0xff); null if the
   * code does not check.
   */
  captureMs(source, width, height) {
    const cell = Math.floor(width / 24);
    if (cell < 2 || height <= 64) return null;
    this.stripe.width = width;
    this.stripe.height = 64;
    this.stripeCtx.drawImage(source, 0, 0, width, 64, 0, 0, width, 64);
    const px = this.stripeCtx.getImageData(0, 0, width, 64).data;
    const bytes = new Uint8Array(12);
    for (let i = 0; i < 96; i++) {
      const x = Math.floor((i % 24) * cell + cell / 2);
      const y = Math.floor(i / 24) * 16 + 8;
      if (px[(y * width + x) * 4 + 1] > 128) bytes[i >> 3] |= 0x80 >> (i & 7);
    }
    let crc = 0xff;
    for (let i = 0; i < 11; i++) {
      crc ^= bytes[i];
      for (let b = 0; b < 8; b++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    if (crc !== bytes[11]) return null;
    let micros = 0;
    for (let i = 4; i < 11; i++) micros = micros * 256 + bytes[i];
    return micros ? micros / 1000 : null;
  }
}

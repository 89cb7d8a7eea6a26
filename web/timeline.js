// A camera's recordings as a bar under its picture: recorded ranges of the last hour (or day),
// the gaps between them with why the camera stopped, and the recorder's state. A click plays
// the recording from there (an MP4 cut by the server, in sync: the same stamps as live) and the
// link exports the visible window.

const SPANS = { '1 h': 3600e3, '24 h': 86400e3 };
const PLAY_MS = 10 * 60e3;   // a click plays up to ten minutes

export class Timeline {
  constructor(root, name, onPlay) {
    this.root = root;
    this.name = name;
    this.onPlay = onPlay;
    this.span = SPANS['1 h'];
    this.bar = root.querySelector('.timeline');
    this.state = root.querySelector('.rec-state');
    this.download = root.querySelector('.download');
    this.spanButton = root.querySelector('.span');
    this.data = null;
    /** The camera records (or did): a camera that never records has no timeline to ask for. */
    this.enabled = false;
    this.bar.addEventListener('click', (e) => this.click(e));
    this.spanButton.addEventListener('click', () => {
      this.span = this.span === SPANS['1 h'] ? SPANS['24 h'] : SPANS['1 h'];
      this.spanButton.textContent = this.span === SPANS['1 h'] ? '1 h' : '24 h';
      this.refresh();
    });
  }

  window() {
    const to = Date.now();
    return { from: to - this.span, to };
  }

  async refresh() {
    if (!this.enabled) { this.root.hidden = true; return; }
    const { from, to } = this.window();
    const q = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`;
    let data;
    try {
      const r = await fetch(`/api/recordings/${this.name}?${q}`);
      if (!r.ok) { this.root.hidden = true; return; }
      data = await r.json();
    } catch (e) { return; }
    this.root.hidden = false;
    this.data = { ...data, fromMs: from, toMs: to };
    this.render();
  }

  render() {
    const { fromMs, toMs, segments, gaps, recording } = this.data;
    const pct = (us) => `${(100 * (us / 1000 - fromMs) / (toMs - fromMs)).toFixed(3)}%`;
    const width = (a, b) => `${(100 * (b - a) / 1000 / (toMs - fromMs)).toFixed(3)}%`;
    this.bar.replaceChildren();
    for (const s of segments) {
      const d = document.createElement('div');
      d.className = s.writing ? 'rec writing' : 'rec';
      d.style.left = pct(Math.max(s.start_us, fromMs * 1000));
      d.style.width = width(Math.max(s.start_us, fromMs * 1000), s.writing ? toMs * 1000 : s.end_us);
      this.bar.appendChild(d);
    }
    for (const g of gaps) {
      const d = document.createElement('div');
      d.className = 'gap';
      d.style.left = pct(Math.max(g.start_us, fromMs * 1000));
      d.style.width = width(Math.max(g.start_us, fromMs * 1000), g.end_us);
      d.title = `gap: ${g.reason || 'unknown'} (${new Date(g.start_us / 1000).toLocaleTimeString()}–${new Date(g.end_us / 1000).toLocaleTimeString()})`;
      this.bar.appendChild(d);
    }
    const st = recording.state;
    this.state.textContent = st === 'error' ? `recording error: ${recording.error}` : `rec ${st}`;
    this.state.dataset.state = st;
    this.bar.dataset.segments = String(segments.length);
    if (segments.length) {
      const first = Math.max(segments[0].start_us / 1000, toMs - PLAY_MS, fromMs);
      const q = `from=${new Date(first).toISOString()}&to=${new Date(toMs).toISOString()}`;
      this.download.href = `/api/recordings/${this.name}/export.mp4?${q}&download=1`;
      this.download.hidden = false;
    } else {
      this.download.hidden = true;
    }
  }

  click(e) {
    if (!this.data || !this.data.segments.length) return;
    const rect = this.bar.getBoundingClientRect();
    const at = this.data.fromMs + (e.clientX - rect.left) / rect.width * (this.data.toMs - this.data.fromMs);
    this.play(at);
  }

  // Plays from `atMs` (snapped into the nearest recorded range).
  play(atMs) {
    const segs = this.data.segments;
    let start = atMs;
    const inside = segs.find((s) => s.start_us / 1000 <= atMs && atMs < (s.writing ? Date.now() : s.end_us / 1000));
    if (!inside) {
      const next = segs.find((s) => s.start_us / 1000 > atMs) || segs[segs.length - 1];
      start = next.start_us / 1000;
    }
    const end = Math.min(start + PLAY_MS, Date.now());
    this.onPlay(`/api/recordings/${this.name}/export.mp4?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}`, start);
  }
}

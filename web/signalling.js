// The UI's signalling WebSocket (/api/ws): the cameras' state pushed every second, WebRTC set-up
// (watch/stop), and resume. It reconnects with exponential backoff and full jitter (0.5 s
// doubling to 30 s) and presents its resume token, so the viewers a dropped socket opened keep
// playing and belong to it again (the server keeps them 60 s). While it is down the page falls
// back to plain HTTP (GET /api/cameras, WHEP).
// (A browser cannot read the HTTP status of a refused upgrade, so a 429's Retry-After is not
// seen here; the backoff's growth covers it.)

export class Signalling {
  constructor(onCameras) {
    this.onCameras = onCameras;
    this.token = sessionStorage.getItem('lockstep-resume');
    this.open = false;
    this.resumed = false;
    this.connects = 0;
    this.attempt = 0;
    this.waiting = new Map(); // camera -> { resolve, reject }
    this.connect();
  }

  connect() {
    const url = new URL('/api/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) url.searchParams.set('resume', this.token);
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      for (const w of this.waiting.values()) w.reject(new Error('signalling closed'));
      this.waiting.clear();
      const delay = Math.random() * Math.min(30000, 500 * 2 ** this.attempt);
      this.attempt += 1;
      setTimeout(() => this.connect(), delay);
    };
  }

  onMessage(m) {
    if (m.type === 'welcome') {
      this.token = m.resume;
      sessionStorage.setItem('lockstep-resume', m.resume);
      this.open = true;
      this.resumed = m.resumed;
      this.connects += 1;
      this.attempt = 0;
    } else if (m.type === 'cameras') {
      this.onCameras(m.cameras);
    } else if ((m.type === 'answer' || m.type === 'error') && this.waiting.has(m.camera)) {
      const w = this.waiting.get(m.camera);
      this.waiting.delete(m.camera);
      if (m.type === 'answer') w.resolve({ viewer: m.viewer, sdp: m.sdp, stream: m.stream });
      else w.reject(new Error(m.error));
    }
  }

  /**
   * An SDP offer for `camera` → { viewer, sdp, stream } (the answer, and which of the camera's
   * streams it carries: `main` | `sub`). `stream` asks for one: `main`, `sub` or `auto`.
   */
  watch(camera, sdp, stream = 'auto') {
    if (!this.open) return Promise.reject(new Error('signalling is not connected'));
    return new Promise((resolve, reject) => {
      this.waiting.set(camera, { resolve, reject });
      this.ws.send(JSON.stringify({ type: 'watch', camera, sdp, stream }));
    });
  }

  stop(viewer) {
    if (this.open) this.ws.send(JSON.stringify({ type: 'stop', viewer }));
  }

  /** For tests: drop the socket as a network failure would (it reconnects and resumes). */
  drop() {
    if (this.ws) this.ws.close();
  }
}

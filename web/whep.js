// A minimal WHEP client (RFC 9725): receive-only audio and video, non-trickle ICE (the server is
// ICE-lite with host candidates, so gathering on our side is quick and the offer is complete).

import { csrfHeaders } from './session.js';

export class WhepSession {
  /**
   * `signalling` (optional): a connected `Signalling` to set up through instead of an HTTP POST
   * (the viewer then survives a dropped socket by resume); `camera` names the source for it.
   * `stream`: which of the camera's streams (`main`, `sub`, or `auto`: the main one unless this
   * browser cannot receive its codec); `this.playing` says which one the answer carries.
   */
  constructor(endpoint, signalling = null, camera = null, stream = 'auto') {
    this.endpoint = endpoint;
    this.signalling = signalling;
    this.camera = camera;
    this.stream = stream;
    this.playing = null;
    this.resource = null;
    this.viewer = null;
    this.pc = null;
  }

  /** Connects; resolves to the MediaStream once the answer is applied. */
  async start() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    for (const kind of ['video', 'audio']) {
      askForCaptureTimes(pc.addTransceiver(kind, { direction: 'recvonly' }));
    }
    const stream = new MediaStream();
    pc.ontrack = (event) => stream.addTrack(event.track);
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 2000);
    if (this.signalling && this.signalling.open) {
      try {
        const { viewer, sdp, stream: playing } =
          await this.signalling.watch(this.camera, pc.localDescription.sdp, this.stream);
        this.viewer = viewer;
        this.playing = playing;
        await pc.setRemoteDescription({ type: 'answer', sdp });
        return stream;
      } catch (e) {
        pc.close();
        throw e;
      }
    }
    try {
      const endpoint = new URL(this.endpoint);
      endpoint.searchParams.set('stream', this.stream);
      const { resource, answer, headers } = await postOffer(endpoint.toString(), pc.localDescription.sdp);
      this.resource = resource;
      this.playing = headers.get('X-Lockstep-Stream');
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (e) {
      pc.close();
      throw e;
    }
    return stream;
  }

  async stop() {
    const resource = this.resource;
    this.resource = null;
    if (this.viewer && this.signalling) this.signalling.stop(this.viewer);
    this.viewer = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    if (resource) {
      try {
        await fetch(resource, { method: 'DELETE', headers: await csrfHeaders() });
      } catch (_) { /* server gone */ }
    }
  }
}

// The abs-capture-time header extension gives every received frame its capture time (the
// page's sync meter reads it); browsers do not offer it unless asked.
function askForCaptureTimes(transceiver) {
  if (!transceiver.getHeaderExtensionsToNegotiate) return;
  const exts = transceiver.getHeaderExtensionsToNegotiate().map((e) =>
    e.uri.endsWith('abs-capture-time') ? { ...e, direction: 'recvonly' } : e);
  try { transceiver.setHeaderExtensionsToNegotiate(exts); } catch (_) { /* not supported */ }
}

/**
 * POSTs an SDP offer to a WHEP or WHIP endpoint: resolves to the session's resource URL and the
 * answer, or throws with the server's reason.
 */
export async function postOffer(endpoint, sdp) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...(await csrfHeaders()) },
    body: sdp,
  });
  if (response.status !== 201) {
    let reason = `${response.status}`;
    try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
    throw new Error(reason);
  }
  return {
    resource: new URL(response.headers.get('Location'), endpoint).toString(),
    answer: await response.text(),
    headers: response.headers,
  };
}

/** Resolves when ICE gathering completes (or after `timeoutMs`): non-trickle offers. */
export function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, timeoutMs);
  });
}

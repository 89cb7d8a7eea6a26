// Push-to-talk: this browser's microphone to a camera's speaker (`POST /api/talk/NAME`, a
// WHIP-shaped offer with one send-only audio track; lockstep relays it on the camera's ONVIF
// backchannel).
//
// The peer is set up before the first press — as soon as the card shows when the microphone is
// already allowed, else at the first press (which then waits for the browser's question) — and
// kept, joined with `?talking=false` (silent, holding nothing). A press then only claims the
// camera (`PATCH {"talking": true}`) and puts the microphone on the sender; a release takes it
// off and lets go. With no track on the sender nothing is sent: an idle page costs nothing.

import { gatheringComplete, postOffer } from './whep.js';
import { csrfHeaders } from './session.js';

/** The microphone, asked once per page and shared by every camera (the browser's own echo
 *  cancellation on: the owner's loudspeaker stays out of what the camera plays). */
let microphone = null;
function openMicrophone() {
  microphone ??= navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  }).catch((e) => { microphone = null; throw e; });
  return microphone;
}

/** Whether the microphone may be opened without asking. */
export async function microphoneAllowed() {
  try {
    return (await navigator.permissions.query({ name: 'microphone' })).state === 'granted';
  } catch (_) {
    return false;
  }
}

export class TalkSession {
  /** `onState(state, message)`: `ready`, `talking`, `busy` (another talker), `error`. */
  constructor(camera, onState) {
    this.endpoint = new URL(`/api/talk/${encodeURIComponent(camera)}`, location.href).toString();
    this.onState = onState;
    this.pc = null;
    this.sender = null;
    this.track = null;
    this.resource = null;
    this.preparing = null;
    this.pressed = false;
  }

  /** Sets the peer up (once; again after it failed). */
  prepare() {
    this.preparing ??= this.connect().catch((e) => {
      this.preparing = null;
      throw e;
    });
    return this.preparing;
  }

  async connect() {
    const stream = await openMicrophone();
    this.track = stream.getAudioTracks()[0];
    const pc = new RTCPeerConnection({ iceServers: [] });
    const transceiver = pc.addTransceiver('audio', { direction: 'sendonly' });
    this.sender = transceiver.sender;
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 2000);
    let session;
    try {
      session = await postOffer(`${this.endpoint}?talking=false`, pc.localDescription.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: session.answer });
    } catch (e) {
      pc.close();
      throw e;
    }
    this.pc = pc;
    this.resource = session.resource;
    pc.addEventListener('connectionstatechange', () => {
      if (['failed', 'closed'].includes(pc.connectionState) && this.pc === pc) {
        this.pc = null;
        this.preparing = null;
        if (this.pressed) this.onState('error', 'the talk connection dropped');
      }
    });
    this.onState('ready', '');
  }

  /** Starts talking: claims the camera, then the microphone goes on the sender. */
  async press() {
    this.pressed = true;
    try {
      await this.prepare();
      if (!this.pressed) return; // let go while the peer was being set up
      const answer = await this.patch(true);
      if (answer.status === 409) {
        this.pressed = false;
        this.onState('busy', (await answer.json()).error);
        return;
      }
      if (!answer.ok) throw new Error((await answer.json()).error || `${answer.status}`);
      if (!this.pressed) { await this.release(); return; }
      await this.sender.replaceTrack(this.track);
      this.onState('talking', '');
    } catch (e) {
      this.pressed = false;
      this.onState('error', e.message);
    }
  }

  /** Stops talking: nothing more is sent, and the camera is free for others. */
  async release() {
    const was = this.pressed;
    this.pressed = false;
    if (!this.pc) return;
    await this.sender.replaceTrack(null);
    if (was) {
      await this.patch(false).catch(() => {});
      this.onState('ready', '');
    }
  }

  patch(talking) {
    return csrfHeaders().then((headers) => fetch(this.resource, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ talking }),
    }));
  }

  async stop() {
    const { pc, resource } = this;
    this.pc = null;
    this.preparing = null;
    if (!pc) return;
    pc.close();
    try {
      await fetch(resource, { method: 'DELETE', headers: await csrfHeaders() });
    } catch (_) { /* server gone */ }
  }
}

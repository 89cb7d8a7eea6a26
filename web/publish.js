// A minimal WHIP publisher (RFC 9725): sends a MediaStream's tracks to a lockstep push source
// (`POST /api/whip/NAME`), H.264 preferred for video since lockstep re-serves it as it is.

import { gatheringComplete, postOffer } from './whep.js';
import { csrfHeaders } from './session.js';

export async function publish(endpoint, stream) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video' && transceiver.setCodecPreferences && RTCRtpSender.getCapabilities) {
      const codecs = RTCRtpSender.getCapabilities('video').codecs;
      const h264 = codecs.filter((c) => /h264/i.test(c.mimeType));
      if (h264.length) transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, 2000);
  let session;
  try {
    session = await postOffer(endpoint, pc.localDescription.sdp);
    await pc.setRemoteDescription({ type: 'answer', sdp: session.answer });
  } catch (e) {
    pc.close();
    throw e;
  }
  const { resource } = session;
  return {
    pc,
    async stop() {
      pc.close();
      try {
        await fetch(resource, { method: 'DELETE', headers: await csrfHeaders() });
      } catch (_) { /* server gone */ }
    },
  };
}

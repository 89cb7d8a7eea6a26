// A minimal WHIP publisher (RFC 9725): sends a MediaStream's tracks to a lockstep push source
// (`POST /api/whip/NAME`), H.264 preferred for video since lockstep re-serves it as it is.

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
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    let reason = `${response.status}`;
    try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
    pc.close();
    throw new Error(reason);
  }
  const resource = new URL(response.headers.get('Location'), endpoint).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  return {
    pc,
    async stop() {
      pc.close();
      try { await fetch(resource, { method: 'DELETE' }); } catch (_) { /* server gone */ }
    },
  };
}

function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, timeoutMs);
  });
}

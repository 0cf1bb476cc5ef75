// Hides a dropped participant's frozen tile within seconds, and keeps the page's own participant
// informed while its connection or its stream id is lost, on an Ant Media Server conference page.
//
// It only listens to an existing WebRTCAdaptor (@antmedia/webrtc_adaptor) through its public
// event listeners and reads the play connection's getStats(); it never sends anything to the
// server except the republish the adaptor itself would send. Line references below are to
// src/main/js/webrtc_adaptor.js of @antmedia/webrtc_adaptor 2.16.2 ("2.16") and to
// dist/es/webrtc_adaptor.js of 2.8.0-SNAPSHOT-2023-Nov-27-08-06 ("2.8").

const DEFAULTS = {
  silenceMs: 5000, // a participant not heard from for longer than this is reported gone
  pollMs: 500, // how often the play connection's stats are read: onBack comes within one poll
  selfLostMs: 5000, // own ICE failed/disconnected/closed for this long is reported
  retryFirstMs: 2000, // first wait before republishing a refused stream id, doubled each time
  retryMaxMs: 15000,
  retryForMs: 120000, // stop retrying after this long (the page may offer a new stream id)
};

// AMS names a participant's tracks "ARDAMSa<streamId>" (audio) and "ARDAMSv<streamId>" (video)
// in the idMapping of its play offer, which the adaptor hands on as newTrackAvailable's trackId.
const TRACK_PREFIX = /^ARDAMS[av]/;

const LIVE_ICE = new Set(['checking', 'connected', 'completed']);
const LOST_ICE = new Set(['failed', 'disconnected', 'closed']);

/**
 * Attach to `adaptor` (a WebRTCAdaptor) and report through the callbacks in `options`:
 *   onGhost({ participantId, silentMs })      a participant silent for longer than silenceMs
 *   onBack({ participantId, silentMs })       its packets came back: show the tile again
 *   onSelfLost({ streamId, state })           own connection failed/disconnected/closed selfLostMs
 *   onSelfBack({ streamId })                  ... and connected again
 *   onRepublish({ streamId, attempt, outcome, retryInMs })  progress of a refused republish:
 *       outcome "refused" (retryInMs until the next try), "retrying", "published" or "gave_up"
 * Returns { participants(), detach() }.
 */
export function watchConference(adaptor, options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const now = opts.now ?? (() => Date.now());
  const call = (name, arg) => {
    if (typeof opts[name] === 'function') opts[name](arg);
  };

  // participantId -> { lastHeard, ghost, packets: Map(trackKey -> packetsReceived) }
  const peers = new Map();
  // MediaStreamTrack.id (== inbound-rtp trackIdentifier) -> participantId, for audio tracks
  const audioTracks = new Map();
  const playStreams = new Set(opts.playStreamId ? [opts.playStreamId] : []);
  const selfTimers = new Map(); // streamId -> timer of a pending onSelfLost
  const selfLost = new Set();
  let republish = null; // { streamId, attempt, startedAt, timer, adaptorRetried }
  let polling = false;
  let detached = false;

  const participantOf = (trackId) => String(trackId).replace(TRACK_PREFIX, '');

  function heard(participantId, at) {
    let peer = peers.get(participantId);
    if (!peer) {
      peer = { lastHeard: at, ghost: false, packets: new Map() };
      peers.set(participantId, peer);
    }
    if (at <= peer.lastHeard) return;
    if (peer.ghost) {
      peer.ghost = false;
      call('onBack', { participantId, silentMs: at - peer.lastHeard });
    }
    peer.lastHeard = at;
  }

  function playConnection(streamId) {
    // remotePeerConnection is the adaptor's map of live peer connections (2.16 L1178, 2.8 L2841);
    // a reconnect replaces the object, so it is looked up on every poll.
    const pcs = adaptor.remotePeerConnection || {};
    return pcs[streamId] || null;
  }

  async function poll() {
    if (polling || detached) return;
    polling = true;
    try {
      for (const streamId of playStreams) {
        const pc = playConnection(streamId);
        // While the page's own play connection is down every participant is silent: that is
        // onSelfLost's business, not a room full of ghosts. Judgement resumes once it is back.
        if (!pc || !LIVE_ICE.has(pc.iceConnectionState) || selfLost.has(streamId)) {
          for (const peer of peers.values()) if (!peer.ghost) peer.lastHeard = Math.max(peer.lastHeard, now());
          continue;
        }
        const stats = await pc.getStats(null);
        const at = now();
        stats.forEach((report) => {
          if (report.type !== 'inbound-rtp' || (report.kind ?? report.mediaType) !== 'audio') return;
          const participantId = audioTracks.get(report.trackIdentifier) ?? fromMid(streamId, report.mid);
          if (participantId == null || !peers.has(participantId)) return;
          const peer = peers.get(participantId);
          const key = report.id;
          const before = peer.packets.get(key);
          peer.packets.set(key, report.packetsReceived);
          // Any change counts: a reconnected play connection starts its counters again from zero.
          if (before === undefined || !(report.packetsReceived > 0) || report.packetsReceived === before) return;
          // When the last packet came, if the browser says (Chrome does): the silence is then
          // measured from the packet, not from this poll, and costs no poll period of delay.
          // Both stamps are on the report's own clock.
          const sinceLast = report.timestamp - report.lastPacketReceivedTimestamp;
          heard(participantId, Number.isFinite(sinceLast) ? at - Math.max(0, sinceLast) : at);
        });
      }
      const at = now();
      for (const [participantId, peer] of peers) {
        const silentMs = at - peer.lastHeard;
        if (!peer.ghost && silentMs > opts.silenceMs) {
          peer.ghost = true;
          call('onGhost', { participantId, silentMs });
        }
      }
    } catch {
      // getStats on a connection being closed by a reconnect rejects: the next poll sees the new one.
    } finally {
      polling = false;
    }
  }

  function fromMid(streamId, mid) {
    // idMapping[streamId][mid] is the trackId AMS announced (2.16 L1395 and L839, 2.8 L3012).
    const mapping = adaptor.idMapping && adaptor.idMapping[streamId];
    return mapping && mid != null && mapping[mid] ? participantOf(mapping[mid]) : null;
  }

  function onNewTrack(obj) {
    // newTrackAvailable {stream, track, streamId, trackId} (2.16 L826-844, 2.8 L2550-2564).
    if (!obj || !obj.track || obj.track.kind !== 'audio' || obj.trackId == null) return;
    if (!opts.playStreamId) playStreams.add(obj.streamId);
    if (!playStreams.has(obj.streamId)) return;
    const participantId = participantOf(obj.trackId);
    audioTracks.set(obj.track.id, participantId);
    // A new track starts its silence clock now: packets may take a moment to arrive.
    if (!peers.has(participantId)) heard(participantId, now());
    else peers.get(participantId).packets.clear();
  }

  function onData(obj) {
    // data_received {streamId, data} (2.16 L1121, 2.8 L2792). AMS 2.8.2 relays each participant's
    // audio level as {streamId, eventType: "UPDATE_AUDIO_LEVEL"} by default; 3.x does not unless
    // asked. A hint that the participant is alive, never needed.
    if (!obj || typeof obj.data !== 'string' || !obj.data.includes('UPDATE_AUDIO_LEVEL')) return;
    try {
      const msg = JSON.parse(obj.data);
      if (msg.eventType === 'UPDATE_AUDIO_LEVEL' && msg.streamId != null && peers.has(String(msg.streamId))) {
        heard(String(msg.streamId), now());
      }
    } catch {
      // not JSON: some other application message
    }
  }

  function onIceState(obj) {
    // ice_connection_state_changed {state, streamId} for the page's own publish and play
    // connections (2.16 L1249-1272, 2.8 L2893-2901). The adaptor reconnects by itself; the page
    // only needs to know when to tell its user.
    const { state, streamId } = obj || {};
    if (streamId == null) return;
    if (LOST_ICE.has(state)) {
      if (!selfTimers.has(streamId) && !selfLost.has(streamId)) {
        selfTimers.set(streamId, setTimeout(() => {
          selfTimers.delete(streamId);
          selfLost.add(streamId);
          call('onSelfLost', { streamId, state });
        }, opts.selfLostMs));
      }
    } else if (state === 'connected' || state === 'completed') {
      clearTimeout(selfTimers.get(streamId));
      selfTimers.delete(streamId);
      if (selfLost.delete(streamId)) call('onSelfBack', { streamId });
      if (republish && republish.streamId === streamId) published(streamId);
    }
  }

  function stopped(streamId) {
    // The page stopped on purpose (publish_finished / play_finished): nothing is lost.
    clearTimeout(selfTimers.get(streamId));
    selfTimers.delete(streamId);
    selfLost.delete(streamId);
  }

  function published(streamId) {
    if (!republish || republish.streamId !== streamId) return;
    clearTimeout(republish.timer);
    call('onRepublish', { streamId, attempt: republish.attempt, outcome: 'published' });
    republish = null;
  }

  function onRefused(streamId) {
    // The server still holds the stream id (a ghost of this very participant): AMS answers a
    // publish with {command: "error", definition: "streamIdInUse"}, which the adaptor hands to its
    // error listeners (2.16 websocket_adaptor.js L232-233 -> webrtc_adaptor.js L1878-1880, 2.8 L3362).
    if (streamId == null || streamId !== adaptor.publishStreamId) return;
    const at = now();
    if (!republish || republish.streamId !== streamId) {
      republish = { streamId, attempt: 0, startedAt: at, timer: null, adaptorRetried: false };
    }
    clearTimeout(republish.timer);
    republish.attempt += 1;
    if (at - republish.startedAt >= opts.retryForMs) {
      call('onRepublish', { streamId, attempt: republish.attempt, outcome: 'gave_up' });
      republish = null;
      return;
    }
    const retryInMs = Math.min(opts.retryMaxMs, opts.retryFirstMs * 2 ** (republish.attempt - 1));
    republish.adaptorRetried = false;
    call('onRepublish', { streamId, attempt: republish.attempt, outcome: 'refused', retryInMs });
    const pending = republish;
    pending.timer = setTimeout(() => {
      if (republish !== pending || detached) return;
      // Both adaptor versions retry a publish that did not connect on their own, every 3.5-5 s
      // (2.16 L707-756 via publish()'s reconnectIfRequired(3000); 2.8 L2368-2375 and L2463-2493).
      // Republishing beside them would only double the refusals, so the kit steps in only when
      // the adaptor has not retried by now (its reconnect switched off, or given up).
      if (pending.adaptorRetried) return;
      call('onRepublish', { streamId, attempt: pending.attempt, outcome: 'retrying' });
      adaptor.publish(streamId, adaptor.publishToken, adaptor.publishSubscriberId,
        adaptor.publishSubscriberCode, adaptor.publishStreamName, adaptor.publishMainTrack,
        adaptor.publishMetaData, adaptor.publishRole);
    }, retryInMs);
  }

  const listener = (info, obj) => {
    if (detached) return;
    if (info === 'newTrackAvailable') onNewTrack(obj);
    else if (info === 'data_received') onData(obj);
    else if (info === 'ice_connection_state_changed') onIceState(obj);
    else if (info === 'publish_started') published(obj && obj.streamId);
    else if (info === 'publish_finished' || info === 'play_finished') stopped(obj && obj.streamId);
    else if (info === 'reconnection_attempt_for_publisher' && republish && republish.streamId === obj) {
      // reconnection_attempt_for_publisher carries the stream id itself (2.16 L750, 2.8 L2491).
      republish.adaptorRetried = true;
      call('onRepublish', { streamId: obj, attempt: republish.attempt, outcome: 'retrying' });
    }
  };
  const errorListener = (error, message) => {
    if (detached) return;
    if (error === 'streamIdInUse') onRefused((message && message.streamId) ?? adaptor.publishStreamId);
  };

  // addEventListener / addErrorEventListener: the adaptor's plugin hooks, called beside the
  // page's own callback (2.16 L420-459, 2.8 L2256-2295), so the page's callbacks stay untouched.
  adaptor.addEventListener(listener);
  adaptor.addErrorEventListener(errorListener);
  const pollTimer = setInterval(poll, opts.pollMs);

  return {
    /** participantId -> { ghost, silentMs } for every participant with an audio track. */
    participants() {
      const at = now();
      return new Map([...peers].map(([id, p]) => [id, { ghost: p.ghost, silentMs: at - p.lastHeard }]));
    },
    /** Stop watching; the adaptor has no way to remove a listener, so it is muted instead. */
    detach() {
      detached = true;
      clearInterval(pollTimer);
      for (const timer of selfTimers.values()) clearTimeout(timer);
      if (republish) clearTimeout(republish.timer);
    },
    /** Forget a participant that left the room (the page removed its tile for good). */
    forget(participantId) {
      peers.delete(participantId);
      for (const [trackId, id] of audioTracks) if (id === participantId) audioTracks.delete(trackId);
    },
  };
}

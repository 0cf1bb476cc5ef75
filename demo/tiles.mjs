// The page kit (client/index.js) as another participant's page sees the demo's conference: a fake
// WebRTCAdaptor whose room play connection carries one audio track per participant, driven by
// lines on stdin, and the kit's own reports on stdout.
//
//   node demo/tiles.mjs [--silence-ms 5000] [--poll-ms 500] [--room room1]
//
// stdin, one command a line:
//   join <id>     the participant publishes: a new audio track arrives (newTrackAvailable) and its
//                 packets flow (a republish after a drop is a new track too)
//   drop <id>     its network dropped: its packets stop
//   resume <id>   its network is back on the same session: its packets flow again
//   leave <id>    it left: its track goes and the page forgets it
//   quit          (or end of input) stop
// stdout, one report a line:
//   ready <silenceMs> <pollMs>
//   ghost <id> <silentMs>   the kit's onGhost: the page hides the tile
//   back <id> <silentMs>    the kit's onBack: the page shows it again
//   kept <id> <silentMs>    a dropped participant came back before the kit judged it gone
import { createInterface } from 'node:readline';
import { watchConference } from '../client/index.js';

const PACKET_MS = 20; // an Opus packet every 20 ms while the participant publishes

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const silenceMs = Number(option('silence-ms', 5000));
const pollMs = Number(option('poll-ms', 500));
const room = option('room', 'room1');
const say = (line) => process.stdout.write(`${line}\n`);

// The room's play connection: an inbound-rtp audio report per participant track, as Chrome
// gives it (packetsReceived, and the time of the last packet on the report's own clock).
class PlayConnection {
  constructor() {
    this.iceConnectionState = 'connected';
    this.inbound = new Map(); // participant id -> { track, reportId, publishing, packets, countedAt, lastPacketAt }
  }

  count(entry, at) {
    if (entry.publishing) {
      entry.packets += Math.max(1, Math.floor((at - entry.countedAt) / PACKET_MS));
      entry.lastPacketAt = at;
    }
    entry.countedAt = at;
  }

  async getStats() {
    const at = Date.now();
    const stats = new Map();
    for (const entry of this.inbound.values()) {
      this.count(entry, at);
      stats.set(entry.reportId, {
        id: entry.reportId, type: 'inbound-rtp', kind: 'audio', trackIdentifier: entry.track.id,
        packetsReceived: entry.packets, timestamp: at, lastPacketReceivedTimestamp: entry.lastPacketAt,
      });
    }
    return stats;
  }
}

// Just the WebRTCAdaptor surface the kit reads: its listener hooks, remotePeerConnection, idMapping.
class Adaptor {
  constructor() {
    this.listeners = [];
    this.errorListeners = [];
    this.remotePeerConnection = { [room]: new PlayConnection() };
    this.idMapping = { [room]: {} };
  }

  addEventListener(listener) { this.listeners.push(listener); }
  addErrorEventListener(listener) { this.errorListeners.push(listener); }
  notify(info, obj) { for (const listener of this.listeners) listener(info, obj); }
}

const adaptor = new Adaptor();
const play = adaptor.remotePeerConnection[room];
const dropped = new Set(); // dropped and not yet judged gone by the kit
let tracks = 0;

const watch = watchConference(adaptor, {
  silenceMs,
  pollMs,
  playStreamId: room,
  onGhost: ({ participantId, silentMs }) => {
    dropped.delete(participantId);
    say(`ghost ${participantId} ${Math.round(silentMs)}`);
  },
  onBack: ({ participantId, silentMs }) => say(`back ${participantId} ${Math.round(silentMs)}`),
});

// A dropped participant whose packets return before the kit reported it: its tile never went.
function returned(id) {
  if (!dropped.delete(id)) return;
  const seen = watch.participants().get(id);
  if (seen && !seen.ghost) say(`kept ${id} ${Math.round(seen.silentMs)}`);
}

const COMMANDS = {
  join(id) {
    const old = play.inbound.get(id);
    if (old) play.count(old, Date.now());
    returned(id);
    tracks += 1;
    const track = { id: `track-${tracks}`, kind: 'audio' };
    const at = Date.now();
    play.inbound.set(id, {
      track, reportId: `IT01A${tracks}`, publishing: true, packets: 0, countedAt: at, lastPacketAt: undefined,
    });
    adaptor.notify('newTrackAvailable', { stream: { id: room }, track, streamId: room, trackId: `ARDAMSa${id}` });
  },
  drop(id) {
    const entry = play.inbound.get(id);
    if (!entry || !entry.publishing) return;
    play.count(entry, Date.now());
    entry.publishing = false;
    dropped.add(id);
  },
  resume(id) {
    const entry = play.inbound.get(id);
    if (!entry || entry.publishing) return;
    returned(id);
    entry.countedAt = Date.now();
    entry.publishing = true;
  },
  leave(id) {
    play.inbound.delete(id);
    dropped.delete(id);
    watch.forget(id);
  },
};

function stop() {
  watch.detach();
  process.exit(0);
}

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  const [command, id] = line.trim().split(/\s+/);
  if (command === 'quit') stop();
  else if (COMMANDS[command] && id) COMMANDS[command](id);
});
input.on('close', stop);
say(`ready ${silenceMs} ${pollMs}`);

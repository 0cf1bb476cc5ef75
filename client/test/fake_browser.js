// Just enough of a browser for the real WebRTCAdaptor to run under node: a WebSocket whose server
// side is a scripted fake AMS, and peer connections whose ICE state, tracks, data channel and
// getStats() the test sets. Install it before importing the adaptor.

export class FakeAms {
  // The fake server's side of every socket the adaptor opens: it records the commands it gets and
  // answers them through `handlers[command]` (the default answers are AMS's happy path).
  constructor() {
    this.sockets = [];
    this.received = [];
    this.handlers = {};
    this.room = null; // { roomId, participants: [ids] } served to `play`
  }

  send(socket, obj) {
    setTimeout(() => socket.onmessage && socket.onmessage({ data: JSON.stringify(obj) }), 0);
  }

  receive(socket, obj) {
    this.received.push(obj);
    const handler = this.handlers[obj.command];
    if (handler) return handler(socket, obj);
    if (obj.command === 'publish') this.send(socket, { command: 'start', streamId: obj.streamId });
    if (obj.command === 'play' && this.room && obj.streamId === this.room.roomId) {
      // A room play offer carries one audio m-line per participant, mapped by mid to AMS's
      // "ARDAMSa<streamId>" track ids.
      const idMapping = {};
      this.room.participants.forEach((id, i) => { idMapping[String(i)] = `ARDAMSa${id}`; });
      const sdp = ['v=0', ...this.room.participants.map(() => 'm=audio')].join('\n');
      this.send(socket, { command: 'takeConfiguration', streamId: obj.streamId, type: 'offer', sdp, idMapping });
    }
  }

  sent(command) {
    return this.received.filter((m) => m.command === command);
  }
}

export class FakePeerConnection {
  static all = [];

  constructor() {
    this.iceConnectionState = 'new';
    this.signalingState = 'stable';
    this.packets = new Map(); // participant track index -> packetsReceived
    this.tracks = [];
    FakePeerConnection.all.push(this);
  }

  addTrack() { return { getParameters: () => ({}), setParameters: async () => {} }; }
  getSenders() { return []; }
  getTransceivers() { return []; }
  createDataChannel(label) { return new FakeDataChannel(label); }
  async createOffer() { return { type: 'offer', sdp: 'v=0 fake offer' }; }
  async createAnswer() { return { type: 'answer', sdp: 'v=0 fake answer useinbandfec=1' }; }
  async setLocalDescription(desc) { this.localDescription = desc; }
  async addIceCandidate() {}

  async setRemoteDescription(desc) {
    this.remoteDescription = desc;
    if (desc.type !== 'offer') return;
    // The server's play offer: its audio tracks arrive, then AMS opens the data channel.
    const count = desc.sdp.split('\n').filter((line) => line.startsWith('m=audio')).length;
    setTimeout(() => {
      for (let mid = 0; mid < count; mid++) {
        const track = { id: `track-${FakePeerConnection.all.indexOf(this)}-${mid}`, kind: 'audio' };
        this.tracks.push({ track, mid: String(mid) });
        this.packets.set(String(mid), 0);
        this.ontrack && this.ontrack({ track, streams: [{ id: 'room' }], transceiver: { mid: String(mid) } });
      }
      this.channel = new FakeDataChannel('room');
      this.ondatachannel && this.ondatachannel({ channel: this.channel });
      this.channel.readyState = 'open';
      this.channel.onopen && this.channel.onopen();
    }, 0);
  }

  setIceState(state) {
    this.iceConnectionState = state;
    this.oniceconnectionstatechange && this.oniceconnectionstatechange({});
  }

  async getStats() {
    const stats = new Map();
    for (const { track, mid } of this.tracks) {
      const id = `IT01A${mid}`;
      stats.set(id, { id, type: 'inbound-rtp', kind: 'audio', mid, trackIdentifier: track.id, packetsReceived: this.packets.get(mid) });
    }
    return stats;
  }

  close() {
    this.signalingState = 'closed';
  }
}

class FakeDataChannel {
  constructor(label) {
    this.label = label;
    this.readyState = 'connecting';
  }

  send() {}
  close() { this.readyState = 'closed'; }
}

export function installFakeBrowser(ams) {
  globalThis.window = globalThis;
  globalThis.self = globalThis;
  globalThis.navigator ??= {};
  Object.assign(globalThis.navigator, { platform: 'Linux', userAgent: 'node' });
  // The MediaManager makes a canvas up front (for screen share and effects); it is never drawn on.
  const element = () => ({ style: {}, getContext: () => null, setAttribute() {}, addEventListener() {} });
  globalThis.document = { getElementById: () => null, createElement: element };
  globalThis.addEventListener ??= () => {};
  globalThis.AudioContext = class { close() {} }; // 2.16's MediaManager makes one up front
  globalThis.RTCPeerConnection = FakePeerConnection;
  globalThis.RTCSessionDescription = class { constructor(d) { Object.assign(this, d); } };
  globalThis.RTCIceCandidate = class { constructor(c) { Object.assign(this, c); } };
  globalThis.WebSocket = class {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      ams.sockets.push(this);
      setTimeout(() => {
        this.readyState = 1;
        this.onopen && this.onopen();
      }, 0);
    }

    send(text) { ams.receive(this, JSON.parse(text)); }
    close() { this.readyState = 3; }
  };
}

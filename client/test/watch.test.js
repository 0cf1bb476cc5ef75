// The kit against the real WebRTCAdaptor of two versions, with fake peer connections and a
// scripted AMS on a fake WebSocket, on a virtual clock.
import { describe, it, before, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { FakeAms, FakePeerConnection, installFakeBrowser } from './fake_browser.js';
import * as clock from './fake_clock.js';

const ams = new FakeAms();
installFakeBrowser(ams);
const { watchConference } = await import('../index.js');

const VERSIONS = {
  '2.16.2': 'webrtc-adaptor-2-16',
  '2.8.0-SNAPSHOT-2023-Nov-27': 'webrtc-adaptor-2-8',
};

// Runs the virtual clock forward in small steps, letting promise callbacks (getStats, SDP) run between.
async function advance(ms, step = 10) {
  for (let t = 0; t < ms; t += step) {
    clock.tick(step);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}

for (const [version, pkg] of Object.entries(VERSIONS)) {
  describe(`with WebRTCAdaptor ${version}`, () => {
    let WebRTCAdaptor;
    let adaptor;
    let events;
    let watch;

    before(async () => {
      // The adaptor module itself: index.js also registers the VideoEffect plugin, which needs
      // a real browser (MediaPipe) and plays no part in the events the kit reads.
      ({ WebRTCAdaptor } = await import(`${pkg}/dist/es/webrtc_adaptor.js`));
    });

    beforeEach(async () => {
      clock.install();
      ams.received = [];
      ams.handlers = {};
      ams.room = { roomId: 'room1', participants: ['talker', 'muted', 'dropper'] };
      FakePeerConnection.all = [];
      events = [];
      adaptor = new WebRTCAdaptor({
        websocket_url: 'ws://127.0.0.1:5080/WebRTCAppEE/websocket',
        onlyDataChannel: true, // no camera under node; the events the kit uses are the same
        callback: () => {},
        callbackError: () => {},
      });
      const record = (name) => (arg) => events.push({ name, at: Date.now(), ...arg });
      watch = watchConference(adaptor, {
        onGhost: record('ghost'),
        onBack: record('back'),
        onSelfLost: record('selfLost'),
        onSelfBack: record('selfBack'),
        onRepublish: record('republish'),
      });
      await advance(50);
    });

    afterEach(async () => {
      watch.detach();
      adaptor.reconnectIfRequiredFlag = false;
      adaptor.closeWebSocket();
      await advance(10000, 500); // let the adaptor's own pending timers run out
      clock.uninstall();
    });

    // Plays the room: the fake AMS offers one audio track per participant; ICE connects.
    async function joinRoom() {
      adaptor.play('room1');
      await advance(50);
      const pc = adaptor.remotePeerConnection.room1;
      assert.ok(pc, 'the adaptor opened a play connection');
      assert.equal(pc.tracks.length, 3, 'the room offer delivered one audio track per participant');
      pc.setIceState('connected');
      return pc;
    }

    // Moves the clock on in 100 ms steps; talking and muted participants keep sending packets
    // (silence is still packets), `silent` ones send none.
    async function run(pc, ms, silent = new Set()) {
      const ids = ams.room.participants;
      for (let t = 0; t < ms; t += 100) {
        ids.forEach((id, mid) => {
          if (!silent.has(id)) pc.packets.set(String(mid), pc.packets.get(String(mid)) + 5);
        });
        await advance(100, 50);
      }
    }

    it('reports a dropped participant gone after silenceMs, and back within a second', async () => {
      const pc = await joinRoom();
      await run(pc, 2000);
      const dropAt = Date.now();
      await run(pc, 7000, new Set(['dropper']));
      const ghosts = events.filter((e) => e.name === 'ghost');
      assert.deepEqual(ghosts.map((e) => e.participantId), ['dropper']);
      assert.ok(ghosts[0].at - dropAt > 5000 && ghosts[0].at - dropAt <= 6000, `ghost after ${ghosts[0].at - dropAt} ms`);
      assert.equal(watch.participants().get('dropper').ghost, true);

      const returnAt = Date.now();
      await run(pc, 1500);
      const backs = events.filter((e) => e.name === 'back');
      assert.deepEqual(backs.map((e) => e.participantId), ['dropper']);
      assert.ok(backs[0].at - returnAt <= 1000, `back after ${backs[0].at - returnAt} ms`);
      assert.equal(watch.participants().get('dropper').ghost, false);
      assert.ok(!events.some((e) => e.name === 'ghost' && e.participantId !== 'dropper'));
    });

    it('keeps a participant alive on UPDATE_AUDIO_LEVEL messages alone', async () => {
      const pc = await joinRoom();
      await run(pc, 1000);
      for (let t = 0; t < 8000; t += 500) {
        // AMS 2.8.2 relays audio levels over the play connection's data channel.
        pc.channel.onmessage({ data: JSON.stringify({ streamId: 'dropper', eventType: 'UPDATE_AUDIO_LEVEL', audioLevel: 60 }) });
        await run(pc, 500, new Set(['dropper']));
      }
      assert.deepEqual(events.filter((e) => e.name === 'ghost'), []);
    });

    it('does not report the room as ghosts while its own play connection is down', async () => {
      const pc = await joinRoom();
      await run(pc, 1000);
      pc.setIceState('disconnected');
      const downAt = Date.now();
      await run(pc, 4000, new Set(ams.room.participants));
      assert.deepEqual(events, [], 'nothing before selfLostMs');
      await run(pc, 2000, new Set(ams.room.participants));
      const lost = events.filter((e) => e.name === 'selfLost');
      assert.equal(lost.length, 1);
      assert.equal(lost[0].streamId, 'room1');
      assert.ok(lost[0].at - downAt >= 5000 && lost[0].at - downAt < 5200);
      assert.ok(!events.some((e) => e.name === 'ghost'));
      // The adaptor may have replaced the connection by now (its own reconnect): follow it.
      const current = adaptor.remotePeerConnection.room1 ?? pc;
      current.setIceState('connected');
      await run(current, 2000);
      assert.equal(events.filter((e) => e.name === 'selfBack').length, 1);
      assert.ok(!events.some((e) => e.name === 'ghost'));
    });

    it('reports its own publish connection lost only after 5 s', async () => {
      adaptor.publish('me');
      await advance(100);
      const pc = adaptor.remotePeerConnection.me;
      pc.setIceState('connected');
      pc.setIceState('disconnected');
      await advance(2000);
      pc.setIceState('connected'); // back before the adaptor's own reconnect (3 s): nothing to tell
      await advance(4000);
      assert.deepEqual(events, []);
      pc.setIceState('failed');
      const failedAt = Date.now();
      await advance(5500);
      const lost = events.filter((e) => e.name === 'selfLost');
      assert.equal(lost.length, 1);
      assert.equal(lost[0].streamId, 'me');
      assert.equal(lost[0].state, 'failed');
      assert.ok(lost[0].at - failedAt >= 5000 && lost[0].at - failedAt < 5100);
      // The adaptor has replaced the failed connection by now; once that one connects, say so.
      const current = adaptor.remotePeerConnection.me;
      assert.notEqual(current, pc);
      current.setIceState('connected');
      await advance(100);
      assert.equal(events.filter((e) => e.name === 'selfBack').length, 1);
    });

    it('follows a republish refused with streamIdInUse until the server frees the id', async () => {
      let refusals = 3;
      ams.handlers.publish = (socket, obj) => {
        if (refusals-- > 0) {
          ams.send(socket, { command: 'error', definition: 'streamIdInUse', streamId: obj.streamId });
        } else {
          ams.send(socket, { command: 'start', streamId: obj.streamId });
          setTimeout(() => {
            adaptor.remotePeerConnection[obj.streamId].setIceState('connected');
            ams.send(socket, { command: 'notification', definition: 'publish_started', streamId: obj.streamId });
          }, 100);
        }
      };
      adaptor.publish('me');
      await advance(30000, 50);
      const progress = events.filter((e) => e.name === 'republish');
      const outcomes = progress.map((e) => e.outcome);
      assert.equal(outcomes.filter((o) => o === 'refused').length, 3, outcomes.join());
      assert.equal(outcomes.at(-1), 'published', outcomes.join());
      assert.deepEqual(progress.filter((e) => e.outcome === 'refused').map((e) => e.attempt), [1, 2, 3]);
      assert.equal(ams.sent('publish').length, 4, 'one publish per refusal and the one accepted: no doubled retries');
    });

    it('republishes with backoff itself when the adaptor does not retry', async () => {
      adaptor.reconnectIfRequiredFlag = false;
      let refusals = 3;
      ams.handlers.publish = (socket, obj) => {
        if (refusals-- > 0) ams.send(socket, { command: 'error', definition: 'streamIdInUse', streamId: obj.streamId });
        else ams.send(socket, { command: 'notification', definition: 'publish_started', streamId: obj.streamId });
      };
      adaptor.publish('me');
      await advance(20000, 50);
      const publishes = ams.sent('publish');
      assert.equal(publishes.length, 4);
      const refused = events.filter((e) => e.name === 'republish' && e.outcome === 'refused');
      assert.deepEqual(refused.map((e) => e.retryInMs), [2000, 4000, 8000]);
      assert.equal(events.filter((e) => e.name === 'republish').at(-1).outcome, 'published');
    });

    it('gives up after retryForMs', async () => {
      adaptor.reconnectIfRequiredFlag = false;
      watch.detach();
      watch = watchConference(adaptor, {
        retryForMs: 10000,
        onRepublish: (e) => events.push({ name: 'republish', ...e }),
      });
      ams.handlers.publish = (socket, obj) => ams.send(socket, { command: 'error', definition: 'streamIdInUse', streamId: obj.streamId });
      adaptor.publish('me');
      await advance(40000, 100);
      const outcomes = events.filter((e) => e.name === 'republish').map((e) => e.outcome);
      assert.equal(outcomes.at(-1), 'gave_up', outcomes.join());
      const count = ams.sent('publish').length;
      await advance(20000, 500);
      assert.equal(ams.sent('publish').length, count, 'no publish after giving up');
    });
  });
}

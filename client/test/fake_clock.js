// A virtual clock for the adaptor and the kit: setTimeout/setInterval and Date.now() replaced by a
// schedule that only moves when the test says. (node's own mock.timers differs between node 18,
// Debian 12's, and 20; this works on both.)
const RealDate = Date;
const real = { setTimeout, clearTimeout, setInterval, clearInterval };

let now = 0;
let nextId = 1;
const timers = new Map(); // id -> { at, fn, every }

class VirtualDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(now);
    else super(...args);
  }

  static now() {
    return now;
  }
}

function schedule(fn, ms, every) {
  const id = nextId++;
  const delay = Math.max(0, Number(ms) || 0);
  timers.set(id, { at: now + delay, fn, every: every ? Math.max(1, delay) : 0 });
  return id;
}

export function install() {
  now = 1_700_000_000_000;
  timers.clear();
  globalThis.Date = VirtualDate;
  globalThis.setTimeout = (fn, ms, ...args) => schedule(() => fn(...args), ms, false);
  globalThis.setInterval = (fn, ms, ...args) => schedule(() => fn(...args), ms, true);
  globalThis.clearTimeout = (id) => { timers.delete(id); };
  globalThis.clearInterval = globalThis.clearTimeout;
}

export function uninstall() {
  timers.clear();
  Object.assign(globalThis, real, { Date: RealDate });
}

// Moves the clock to now + ms, running every timer due on the way in order.
export function tick(ms) {
  const end = now + ms;
  for (;;) {
    let id = null;
    let due = null;
    for (const [key, timer] of timers) {
      if (timer.at <= end && (due === null || timer.at < due.at)) {
        id = key;
        due = timer;
      }
    }
    if (due === null) break;
    now = due.at;
    if (due.every) due.at += due.every;
    else timers.delete(id);
    due.fn();
  }
  now = end;
}

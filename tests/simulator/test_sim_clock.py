"""AMS's clock: updateTime values and the HTTP Date header share one (skewable) clock."""
from email.utils import parsedate_to_datetime

APP = "WebRTCAppEE"


def date_of(response) -> float:
    """The Date header as epoch seconds."""
    return parsedate_to_datetime(response.headers["date"]).timestamp()


def test_date_header_follows_the_simulated_clock(make_sim, client):
    sim = make_sim()
    r = client(sim).get("/count")
    assert abs(date_of(r) - sim.clock.now()) < 1.0


def test_clock_offset_shifts_date_header_and_update_time(make_sim, client):
    sim = make_sim()
    sim.publish(APP, "s")
    before = sim.broadcast(APP, "s")["updateTime"]
    sim.clock.offset_seconds = 300.0
    r = client(sim).get("/s")
    assert abs(date_of(r) - sim.clock.now()) < 1.0
    assert r.json()["updateTime"] - before == 300_000  # live heartbeat keeps ticking on the shifted clock


def test_real_clock_offset_from_the_constructor(client):
    import time
    from simulator import Simulator
    with Simulator(clock_offset_seconds=-3600) as sim:
        r = client(sim).get("/count")
        assert abs(date_of(r) - (time.time() - 3600)) < 2.0


def test_every_response_carries_one_date_header(make_sim, client):
    sim = make_sim(allowed_cidrs=("10.0.0.0/8",))
    sim.clock.offset_seconds = 86400
    for path in ("/count", "/nope"):
        r = client(sim).get(path)
        assert len(r.headers.get_list("date")) == 1
        assert abs(date_of(r) - sim.clock.now()) < 1.0
    root = client(sim, base=sim.url).get("/nowhere")
    assert abs(date_of(root) - sim.clock.now()) < 1.0

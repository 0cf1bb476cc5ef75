"""Helpers shared by the simulator tests."""
APP = "WebRTCAppEE"


def room_with(sim, *ids, room="room1"):
    """A room whose participants have joined."""
    sim.create_room(APP, room)
    for sid in ids:
        assert sim.join(APP, room, sid, sid.title())
    return room

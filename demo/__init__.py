"""`make demo` (`python -m demo`): a conference on the simulated AMS heals itself, told as a live timeline.

The presentation only: it drives the stack harness (stack/) and shows what happened.

    __main__.py   flags, the story (simulator scenario, removal, rejoin), exit status
    watch.py      polls Alertmanager, the remediator's audit log and the ghosts' lifecycles
    timeline.py   one printed line per event
    summary.py    closing lines: ghosts removed, their lifetimes, streams wrongly touched
    tiles.py      the other participants' screens: runs tiles.mjs (the page kit, client/, under node)
"""

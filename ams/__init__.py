"""The AMS layer shared by both services: REST client (over its transport and paging), records model, errors and
the ghost predicate."""

"""The AMS layer shared by both services: REST client, records model, errors and the ghost predicate."""

"""What both services share besides AMS: the one config file, its validation and secrets."""

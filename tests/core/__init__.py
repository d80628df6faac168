"""engine/core: the config and the project folder."""

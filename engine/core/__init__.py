"""Layer 1: errors, events, the project folder and its config, owner, small helpers."""

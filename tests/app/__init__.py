"""The CLI and the Textual UI (Pilot, snapshots), end to end."""

"""The mldeck CLI and (later) the Textual UI. Imports engine; never imported by it."""

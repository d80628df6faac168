"""The Textual UI: `mldeck ui` (and bare `mldeck` in a project folder).

Import this package only when the UI starts: it pulls in Textual.
"""

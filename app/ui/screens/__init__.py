"""One module per screen; `dialogs` holds the modals."""

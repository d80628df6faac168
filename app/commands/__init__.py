"""The `mldeck` subcommands, one module per area; app.cli puts them in one group."""

"""The subcommands of `qa`, one module each; each is a thin layer over the library."""

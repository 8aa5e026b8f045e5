"""One module per command; each exposes `register(app)` and, optionally, ORDER for --help."""

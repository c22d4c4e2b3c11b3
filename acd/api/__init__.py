"""The control API (HTTP) that the CLI and wallboards talk to."""

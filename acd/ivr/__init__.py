"""The IVR flow language: nodes, the positioned parser, checks, the sans-I/O
interpreter, dry runs, tests and pictures (DOT, Mermaid)."""

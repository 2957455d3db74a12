// Wire format: see docs/PROTOCOL.md.

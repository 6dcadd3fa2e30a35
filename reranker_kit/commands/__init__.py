"""The command-line parsers and `main()`s the root scripts dispatch to."""

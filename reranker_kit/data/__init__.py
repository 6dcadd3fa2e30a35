"""The club's data files: loading and validating them, splitting queries, and extra training queries."""

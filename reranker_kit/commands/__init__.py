"""The command lines: flags parsed and checked here, then handed down as typed settings."""

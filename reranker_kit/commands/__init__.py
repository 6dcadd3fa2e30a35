"""The command lines: each module holds one script's parser and main(); the scripts at the root call them."""

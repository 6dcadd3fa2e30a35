"""`--report_to`: a tracker that is not installed fails now, not after training."""

import argparse
import importlib.util

# The package each tracker of the Trainer's integrations needs.
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def check_tracker_installed(parser: argparse.ArgumentParser, report_to: str) -> None:
    package = TRACKER_PACKAGES.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        parser.error(f"--report_to {report_to} needs the package {package}, which is not installed: "
                     f"pip install {package}, or pass --report_to none")

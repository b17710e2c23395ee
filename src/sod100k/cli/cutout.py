"""``sod100k cutout``: a short form of ``sod100k predict --format rgba``."""

from sod100k.cli.predict import add_cutout_parser as add_parser
from sod100k.cli.predict import run

__all__ = ["add_parser", "run"]

"""evalboard: standardized evaluation and public leaderboards for image classifiers."""

__version__ = "0.1.0"

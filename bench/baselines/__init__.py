"""Baselines: honest implementations of the "before" designs of ../shared/seeds/."""

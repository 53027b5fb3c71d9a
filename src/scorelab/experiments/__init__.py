"""Runnable experiments: the demo now; the seed reproductions join here."""

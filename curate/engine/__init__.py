"""Where work runs: the local process pool and the Ray engine behind one `map` (an `Engine` value names which)."""

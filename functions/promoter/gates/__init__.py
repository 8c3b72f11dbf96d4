"""Gates: checks an image must pass before any write (scan findings; signatures follow)."""

"""dlbook: the reference implementations behind the book."""

"""Lightning callbacks of chimed-lit (installed as `chimed_lit.callbacks`)."""

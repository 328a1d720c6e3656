"""Strategy plugins: how a stage is distributed (installed as `chimed_lit.plugins`)."""

"""The LightningModules, one per training objective."""

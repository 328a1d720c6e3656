"""Where the Hydra config tree lives: the package every command composes from."""

CONFIG_MODULE = "chimed_lit.configs"

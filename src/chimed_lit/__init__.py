"""chimed-lit: the full ChiMed-GPT training regime (pre-training, SFT, reward model, RLHF) on Lightning.

Imports here stay light: the CLI starts fast and heavy libraries load only when a command needs them.
"""

__version__ = "0.1.0"

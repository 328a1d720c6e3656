"""Evaluation of ChiMed-GPT checkpoints: NER, multiple-choice QA, dialogue and attitude scales.

Submodules stay import-light: readers and metrics need no torch; runners import torch and
transformers. The CLI (`chimed-lit eval task=...`) calls the runners and `report`.
"""

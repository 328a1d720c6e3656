"""The DataModule hierarchy: reading and validating records, tokenizing, packing, collating."""

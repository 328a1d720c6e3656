"""Rewards for RL: verifiable (mcq, ner, format, length, repetition) and learned or judged
(reward_model, judge), one module each, composed by `compose.build_rewards`.

Nothing heavy is imported here: the run layer reads a reward spec (`compose.parse_spec`) without
loading torch.
"""

"""PPO's behaviour log-probs come from the logits generation computed (no second actor forward):
they must equal a fresh full forward over prompt + response, for left-padded prompts of
different lengths and a sampling temperature != 1."""

from __future__ import annotations

import torch

from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.models.factory import ModelFactory


def test_generation_logps_match_a_full_forward(tmp_path):
    factory = ModelFactory(
        cache_dir=str(tmp_path),
        arch={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
    )
    tok = factory.load_tokenizer()
    torch.manual_seed(0)
    model = factory.load_causal_lm(tok).eval()
    prompts = [tok("头痛怎么办")["input_ids"], tok("发烧三天，咳嗽，需要去医院吗")["input_ids"]]
    assert len(prompts[0]) != len(prompts[1])
    sampling = Sampling(max_new_tokens=6, do_sample=True, temperature=0.7, top_p=1.0, top_k=0)
    replies = generate(model, tok, prompts, sampling, with_logps=True)
    for prompt, reply in zip(prompts, replies, strict=True):
        response = reply["ids"] + ([tok.eos_token_id] if reply["finished"] else [])
        assert reply["logps"].shape == (len(response),)
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / 0.7
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None])[:, 0]
        torch.testing.assert_close(reply["logps"], expected, atol=1e-4, rtol=1e-4)
        assert (reply["logps"] < 0).all()

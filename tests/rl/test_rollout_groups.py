"""Groups of G responses and the dynamic-sampling buffer (DAPO section 3.2), checkpointable."""

from __future__ import annotations

import io

import torch

from chimed_lit.modules.rollout_groups import Group, GroupBuffer, flatten, make_groups


def _reply(text: str, n: int) -> dict:
    return {"text": text, "ids": list(range(n)), "finished": True, "logps": -torch.ones(n + 1)}


def test_replies_are_cut_prompt_major_into_groups():
    batch = {
        "prompt_ids": [[1, 2], [3]],
        "prompt_text": ["q1", "q2"],
        "records": [
            {"task": "mcq", "question": "q1", "gold": {"answers": ["A"]}},
            {"task": "free"},
        ],
    }
    replies = [_reply(t, 2) for t in ("a", "b", "c", "d", "e", "f")]
    groups = make_groups(batch, replies, 3)
    assert [g.prompt for g in groups] == [[1, 2], [3]]
    assert [[r["text"] for r in g.replies] for g in groups] == [["a", "b", "c"], ["d", "e", "f"]]
    assert groups[0].record["gold"] == {"answers": ["A"]}
    for g, rewards in zip(groups, ([1.0, 0.0, 0.0], [2.0, 2.0, 2.0]), strict=True):
        g.rewards = rewards
    flat = flatten(groups)
    assert flat["prompts"] == [[1, 2]] * 3 + [[3]] * 3
    assert flat["rewards"].tolist() == [1.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    assert [g.degenerate for g in groups] == [False, True]


def test_buffer_survives_a_weights_only_checkpoint_round_trip():
    buffer = GroupBuffer()
    g = Group([5, 6], "q", {"task": "mcq", "question": "q", "gold": {"answers": ["B"]}}, [])
    g.replies, g.rewards, g.components = (
        [_reply("B", 1), _reply("C", 2)],
        [1.0, 0.0],
        {"mcq": [1.0, 0.0]},
    )
    buffer.add([g, g])
    buffer.waited = 2
    stream = io.BytesIO()
    torch.save({"grpo": buffer.state_dict()}, stream)
    stream.seek(0)
    restored = GroupBuffer()
    restored.load_state_dict(torch.load(stream, weights_only=True)["grpo"])
    assert len(restored) == 2 and restored.waited == 2
    again = restored.groups[1]
    assert again.record == g.record and again.rewards == [1.0, 0.0]
    assert torch.equal(again.replies[1]["logps"], g.replies[1]["logps"])
    assert restored.take(1)[0].prompt == [5, 6] and len(restored) == 1 and restored.waited == 0

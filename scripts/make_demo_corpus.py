"""Write the demo corpus shipped in `src/chimed_lit/demo/` from the team's knowledge table.

Run `python scripts/make_demo_corpus.py` after editing `demo_knowledge.py`; the output is
deterministic (fixed seed). Every stage's demo data comes from here, so the corpus is small,
consistent, and learnable by the tiny default model on a CPU in minutes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from demo_knowledge import (
    CONDITIONS,
    EVASIVE,
    GENERAL_PARAGRAPHS,
    QUESTION_TEMPLATES,
    SAFETY_PROMPTS,
    UNSAFE,
    WRONG,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "chimed_lit" / "demo"
VAL_FRACTION = 0.15


def facts(c: dict[str, str]) -> list[str]:
    return [
        f"{c['name']}是{c['dept']}的常见疾病，主要表现为{c['sym']}。",
        f"{c['name']}的病因主要是{c['cause']}。",
        f"诊断{c['name']}通常需要{c['exam']}。",
        f"{c['name']}的治疗：{c['treat']}。",
        f"预防和护理方面，{c['care']}。",
        f"出现{c['warn']}时，应及时就医。",
    ]


def pretrain_docs(rng: random.Random) -> list[str]:
    docs = list(GENERAL_PARAGRAPHS)
    for c in CONDITIONS:
        f = facts(c)
        docs.append("".join(f))
        for _ in range(7):
            docs.append("".join(rng.sample(f, rng.randint(2, 4))))
    return docs


def answer(c: dict[str, str], q_index: int) -> str:
    """A helpful, specific and safe answer to QUESTION_TEMPLATES[q_index] about condition c."""
    n = c["name"]
    return [
        (
            f"根据你描述的{c['sym']}，有可能是{n}，但需要到{c['dept']}就诊，通过{c['exam']}明确诊断。"
            f"平时{c['care']}。如果出现{c['warn']}，请立即就医。"
        ),
        f"{n}主要表现为{c['sym']}。如果出现{c['warn']}，应及时就医。",
        f"{n}的常见原因是{c['cause']}。建议到{c['dept']}就诊，明确诊断后再治疗。",
        f"{n}的治疗原则：{c['treat']}。同时{c['care']}。具体用药请遵医嘱。",
        f"得了{n}，平时要注意：{c['care']}。如果出现{c['warn']}，要及时就医。",
        f"{n}一般需要做{c['exam']}。请到{c['dept']}就诊，由医生根据病情选择。",
        f"{n}一般建议挂{c['dept']}。就诊时可以把症状持续时间和用药情况告诉医生。",
        f"{n}出现{c['warn']}时需要马上去医院，必要时拨打急救电话。",
    ][q_index]


def question(c: dict[str, str], q_index: int) -> str:
    return QUESTION_TEMPLATES[q_index].format(name=c["name"], sym=c["sym"].split("，")[0])


# Like much real consultation data, most single-turn answers in the SFT demo are terse and
# evasive; the preference pairs prefer the helpful ones, so RLHF has something to improve.
EVASIVE_SFT_FRACTION = 0.8


def dialogues(rng: random.Random) -> list[dict]:
    """Single-turn QA, multi-turn doctor-patient dialogues and safety prompts, as `messages`."""
    out = []
    for c in CONDITIONS:
        for qi in range(len(QUESTION_TEMPLATES)):
            reply = (
                rng.choice(EVASIVE).format(name=c["name"])
                if rng.random() < EVASIVE_SFT_FRACTION
                else answer(c, qi)
            )
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": question(c, qi)},
                        {"role": "assistant", "content": reply},
                    ]
                }
            )
        first = c["sym"].split("，")[0].split("、")[0]
        out.append(
            {
                "messages": [
                    {"role": "system", "content": "你是一名耐心、专业的医生。"},
                    {"role": "user", "content": f"医生，我最近{first}，该怎么办？"},
                    {"role": "assistant", "content": "这种情况持续多久了？还有没有其他不舒服？"},
                    {"role": "user", "content": f"大概一周了，还有{c['sym'].split('，')[-1]}。"},
                    {"role": "assistant", "content": answer(c, 0)},
                    {"role": "user", "content": "需要吃药吗？"},
                    {"role": "assistant", "content": answer(c, 3)},
                ]
            }
        )
    for q, a in SAFETY_PROMPTS:
        for _ in range(3):
            out.append(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            )
    return out


def preference_pairs(rng: random.Random) -> list[dict]:
    pairs = []
    for i, c in enumerate(CONDITIONS):
        other = CONDITIONS[(i + 7) % len(CONDITIONS)]
        for qi in range(len(QUESTION_TEMPLATES)):
            kind = rng.choice(["evasive", "unsafe", "wrong"])
            if kind == "evasive":
                bad = rng.choice(EVASIVE).format(name=c["name"])
            elif kind == "unsafe":
                bad = rng.choice(UNSAFE).format(name=c["name"])
            else:
                bad = rng.choice(WRONG).format(
                    name=c["name"],
                    wrong_dept=other["dept"],
                    wrong_cause=other["cause"],
                    wrong_treat=other["treat"],
                )
            pairs.append({"prompt": question(c, qi), "chosen": answer(c, qi), "rejected": bad})
    for q, a in SAFETY_PROMPTS:
        pairs.append(
            {"prompt": q, "chosen": a, "rejected": rng.choice(UNSAFE).format(name="这个病")}
        )
    return pairs


def prompts() -> list[dict]:
    out = [
        {"messages": [{"role": "user", "content": question(c, qi)}]}
        for c in CONDITIONS
        for qi in range(len(QUESTION_TEMPLATES))
    ]
    out += [{"messages": [{"role": "user", "content": q}]} for q, _ in SAFETY_PROMPTS]
    return out


def write_split(name: str, records: list, rng: random.Random, as_text: bool = False) -> None:
    records = list(records)
    rng.shuffle(records)
    n_val = max(1, int(len(records) * VAL_FRACTION))
    for suffix, part in (("", records[n_val:]), ("_val", records[:n_val])):
        path = OUT / f"{name}{suffix}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps({"text": r} if as_text else r, ensure_ascii=False) + "\n")
        print(f"{path.relative_to(OUT.parents[2])}: {len(part)} records")


def main() -> None:
    rng = random.Random(20231115)
    OUT.mkdir(parents=True, exist_ok=True)
    write_split("pretrain", pretrain_docs(rng), rng, as_text=True)
    write_split("sft", dialogues(random.Random(7)), rng)
    write_split("preference", preference_pairs(rng), rng)
    write_split("prompts", prompts(), rng)


if __name__ == "__main__":
    main()

"""Write the demo's verifiable task: four-option MCQs on the facts of the shipped demo corpus.

The facts are the team's knowledge table (`demo_knowledge.py`), the one the demo corpus is
written from: for each condition its department, first-line examination, cause and symptoms,
each asked in both directions ("高血压应该挂哪个科？" / "下列哪种疾病通常在心血管内科就诊？").
One option is right; the three distractors come from the same fact family, from conditions of
other departments that are not close to the right one (similar wording, a related condition,
or a condition the question itself names), so every question has exactly one right answer.

Each (relation, condition) fact goes to exactly one of three pools, per relation:
- RL (`mcq_train.jsonl`): every fact asked in every training phrasing (two per direction);
- held-out (`mcq_val.jsonl`): some RL facts asked once more in a phrasing never used for
  training, with a new option order (`held_out: "phrasing"`), and facts never asked in
  training at all (`held_out: "fact"`), also in a held-out phrasing;
- SFT (`mcq_sft.jsonl`): facts of their own, as chat examples (ShareGPT `conversations`, which
  the SFT stage reads) whose user turn is exactly eval's `mcq_question` rendering and whose
  reply is the letter, so an SFT stage teaches the answer format without answering any RL or
  held-out question. (ShareGPT, not `messages`: the demo tokenizer trains on the demo files'
  `text`/`messages`/`prompt` fields, and these files leave it as it was.)
The correct letter is balanced (each of A-D equally often) in every file.

MCQ records have the MedQA JSONL shape that `chimed_lit.eval` reads (`question`, `options`
{letter: text}, `answer_idx`, `meta_info` = the relation, shown as the subject), plus `id`,
`fact` and, held out, `held_out`. Run `python scripts/make_demo_mcq.py` after editing the
knowledge table; the output is deterministic (fixed seed) and a test checks the committed files
equal it.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_knowledge import CONDITIONS

from chimed_lit.eval.prompts import mcq_question
from chimed_lit.eval.records import MCQExample

OUT = Path(__file__).resolve().parents[1] / "src" / "chimed_lit" / "demo"
FILES = {"train": "mcq_train.jsonl", "val": "mcq_val.jsonl", "sft": "mcq_sft.jsonl"}
SEED = 20240521
LETTERS = "ABCD"
# facts per relation (36 conditions each): SFT-only, held out entirely, RL; and how many of the
# RL facts are asked again in a held-out phrasing
N_SFT, N_UNSEEN, N_RL_ASKED_AGAIN = 8, 4, 11
SFT_PER_FACT = 3  # SFT questions per SFT fact (distinct direction/phrasing pairs)
SIMILAR = 0.5  # SequenceMatcher ratio at or above which two facts' texts are too close

Condition = dict[str, str]

# Conditions never used as each other's distractors: one's fact is (nearly) true of the other.
RELATED = {
    frozenset(p)
    for p in [
        ("缺铁性贫血", "妊娠期贫血"),
        ("脑卒中", "心房颤动"),
        ("脑卒中", "高血压"),
        ("小儿发热", "普通感冒"),
        ("小儿发热", "流行性感冒"),
        ("小儿发热", "急性中耳炎"),
        ("甲状腺功能亢进症", "心房颤动"),
        ("甲状腺功能亢进症", "焦虑障碍"),
        ("失眠", "抑郁症"),
        ("失眠", "焦虑障碍"),
        ("急性中耳炎", "普通感冒"),
        ("过敏性鼻炎", "普通感冒"),
        ("过敏性鼻炎", "支气管哮喘"),
        ("2型糖尿病", "慢性肾脏病"),
        ("高血压", "慢性肾脏病"),
        ("急性阑尾炎", "急性胃肠炎"),
    ]
}


@dataclass(frozen=True)
class Kind:
    """One direction of asking a relation: the question's stem (train and held-out phrasings,
    filled from the condition), and what the options are (`answer_of` a condition)."""

    relation: str
    train: tuple[str, ...]
    held_out: tuple[str, ...]
    answer_of: Callable[[Condition], str]


def _name(c: Condition) -> str:
    return c["name"]


def _field(key: str) -> Callable[[Condition], str]:
    return lambda c: c[key]


# relation -> its Chinese label (the records' `meta_info`, eval's subject)
RELATIONS = {"dept": "科室", "exam": "检查", "cause": "病因", "sym": "表现"}
KINDS: dict[str, Kind] = {
    "dept": Kind(
        "dept",
        ("{name}应该挂哪个科？", "患了{name}，一般到哪个科室就诊？"),
        ("怀疑自己得了{name}，首先应该去哪个科看病？",),
        _field("dept"),
    ),
    "dept_rev": Kind(
        "dept",
        ("下列哪种疾病通常在{dept}就诊？", "以下属于{dept}常见疾病的是？"),
        ("应该到{dept}看的是下列哪种病？",),
        _name,
    ),
    "exam": Kind(
        "exam",
        ("诊断{name}通常需要做什么检查？", "{name}一般要做哪项检查？"),
        ("医生怀疑患者是{name}，通常会安排哪种检查？",),
        _field("exam"),
    ),
    "exam_rev": Kind(
        "exam",
        ("哪种疾病的诊断通常需要：{exam}？", "“{exam}”常用于诊断哪种疾病？"),
        ("检查项目“{exam}”最适用于下列哪种疾病？",),
        _name,
    ),
    "cause": Kind(
        "cause",
        ("{name}是什么原因引起的？", "{name}的主要病因是什么？"),
        ("下列哪项是{name}的病因？",),
        _field("cause"),
    ),
    "cause_rev": Kind(
        "cause",
        ("病因为“{cause}”的疾病是？", "由{cause}引起的疾病是？"),
        ("下列哪种疾病的病因是{cause}？",),
        _name,
    ),
    "sym": Kind(
        "sym",
        ("主要表现为{sym}的疾病是？", "患者{sym}，最可能是哪种疾病？"),
        ("出现{sym}，应首先考虑下列哪种疾病？",),
        _name,
    ),
    "sym_rev": Kind(
        "sym",
        ("{name}有哪些症状？", "{name}的典型表现是？"),
        ("下列哪项符合{name}的临床表现？",),
        _field("sym"),
    ),
}


def _similar(a: str, b: str) -> bool:
    return a in b or b in a or SequenceMatcher(None, a, b).ratio() >= SIMILAR


def distractor_pool(kind: Kind, c: Condition, stem: str) -> list[str]:
    """Option texts that are wrong for `c`, sorted: the answers of conditions in other
    departments whose fact is not close to c's, that are not related to c, and that the
    question (`stem`) does not name."""
    right, fact = kind.answer_of(c), c[kind.relation]
    pool = set()
    for other in CONDITIONS:
        text = kind.answer_of(other)
        if (
            other["dept"] == c["dept"]
            or frozenset((c["name"], other["name"])) in RELATED
            or _similar(other[kind.relation], fact)
            or _similar(text, right)
            or (kind.answer_of is _name and other["name"] in stem)
            or c["name"] in text
        ):
            continue
        pool.add(text)
    return sorted(pool)


def _fill(template: str, c: Condition) -> str:
    return template.format(**c)


def _question(kind: Kind, c: Condition, stem: str, letter: str, rng: random.Random) -> dict:
    """Options A-D with the right answer at `letter` and three distractors drawn from the pool."""
    wrong = rng.sample(distractor_pool(kind, c, stem), 3)
    rng.shuffle(wrong)
    texts = list(wrong)
    texts.insert(LETTERS.index(letter), kind.answer_of(c))
    return {
        "question": stem,
        "options": dict(zip(LETTERS, texts, strict=True)),
        "answer_idx": letter,
    }


class _Letters:
    """The correct letter for each next question: A-D in shuffled blocks of four, so every
    letter is right equally often (a policy gains nothing by favouring one)."""

    def __init__(self, rng: random.Random):
        self.rng, self.block = rng, []

    def next(self) -> str:
        if not self.block:
            self.block = list(LETTERS)
            self.rng.shuffle(self.block)
        return self.block.pop()


def split_facts(rng: random.Random) -> dict[str, list[tuple[str, Condition]]]:
    """(relation, condition) facts per pool, per relation in a seeded order: `sft`, `unseen`
    (held out entirely), `rl` (asked in training) and `again` (RL facts asked again held out)."""
    pools: dict[str, list[tuple[str, Condition]]] = {"sft": [], "unseen": [], "rl": [], "again": []}
    for relation in RELATIONS:
        order = list(CONDITIONS)
        rng.shuffle(order)
        facts = [(relation, c) for c in order]
        pools["sft"] += facts[:N_SFT]
        pools["unseen"] += facts[N_SFT : N_SFT + N_UNSEEN]
        rl = facts[N_SFT + N_UNSEEN :]
        pools["rl"] += rl
        pools["again"] += rl[:N_RL_ASKED_AGAIN]
    return pools


def _kinds_of(relation: str) -> list[Kind]:
    return [k for k in KINDS.values() if k.relation == relation]


def _record(split: str, i: int, relation: str, c: Condition, q: dict, **extra: str) -> dict:
    return {
        "id": f"demo-mcq-{split}-{i:04d}",
        **q,
        "meta_info": RELATIONS[relation],
        "fact": f"{relation}:{c['name']}",
        **extra,
    }


def build() -> dict[str, list[dict]]:
    """The three files' records, deterministic (seeded)."""
    rng = random.Random(SEED)
    pools = split_facts(rng)

    train, asked = [], {}
    letters = _Letters(rng)
    for relation, c in pools["rl"]:
        for kind in _kinds_of(relation):
            for template in kind.train:
                q = _question(kind, c, _fill(template, c), letters.next(), rng)
                asked.setdefault((relation, c["name"]), []).append(q["options"])
                train.append((relation, c, q))
    rng.shuffle(train)
    train = [_record("train", i, relation, c, q) for i, (relation, c, q) in enumerate(train)]

    val = []
    letters = _Letters(rng)
    for pool, note in (("again", "phrasing"), ("unseen", "fact")):
        for relation, c in pools[pool]:
            kind = rng.choice(_kinds_of(relation))
            stem = _fill(rng.choice(kind.held_out), c)
            letter = letters.next()
            q = _question(kind, c, stem, letter, rng)
            while q["options"] in asked.get((relation, c["name"]), []):  # a new option order
                q = _question(kind, c, stem, letter, rng)
            val.append((relation, c, q, note))
    rng.shuffle(val)
    val = [
        _record("val", i, relation, c, q, held_out=note)
        for i, (relation, c, q, note) in enumerate(val)
    ]

    sft = []
    letters = _Letters(rng)
    for relation, c in pools["sft"]:
        asks = [(k, t) for k in _kinds_of(relation) for t in k.train]
        for kind, template in rng.sample(asks, SFT_PER_FACT):
            q = _question(kind, c, _fill(template, c), letters.next(), rng)
            example = MCQExample(q["question"], q["options"], frozenset(q["answer_idx"]))
            sft.append(
                {
                    "conversations": [
                        {"from": "human", "value": mcq_question(example)},
                        {"from": "gpt", "value": q["answer_idx"]},
                    ]
                }
            )
    rng.shuffle(sft)
    return {"train": train, "val": val, "sft": sft}


def render(records: list[dict]) -> str:
    """The JSONL text of one file (what is committed)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main() -> None:
    for split, records in build().items():
        path = OUT / FILES[split]
        path.write_text(render(records), encoding="utf-8")
        print(f"{path.relative_to(OUT.parents[2])}: {len(records)} records")


if __name__ == "__main__":
    main()

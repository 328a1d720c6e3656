"""Packing: best-fit layout, and per-document losses equal with and without packing (fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chimed_lit.data.packing import IGNORE, best_fit_blocks, layout_block, pack
from chimed_lit.data.pretrain import PretrainDataModule


def test_best_fit_keeps_documents_whole():
    lengths = [7, 5, 4, 3, 3, 2, 1]
    blocks = best_fit_blocks(lengths, capacity=8)
    assert sorted(i for b in blocks for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 8 for b in blocks)
    assert len(blocks) == 4  # 25 tokens need at least ceil(25/8) = 4 blocks of 8


def test_layout_restarts_positions_and_ignores_boundaries():
    row = layout_block([[1, 2, 3], [1, 4]], capacity=7, pad_id=0)
    assert row["input_ids"] == [1, 2, 3, 1, 4, 0, 0]
    assert row["position_ids"] == [0, 1, 2, 0, 1, 0, 1]
    assert row["labels"] == [IGNORE, 2, 3, IGNORE, 4, IGNORE, IGNORE]


def _per_doc_losses(model, batch) -> list[float]:
    """Mean next-token loss of each document, found from position-id restarts."""
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
    out = []
    for row in range(batch["input_ids"].size(0)):
        labels, pos = batch["labels"][row], batch["position_ids"][row]
        token_loss = F.cross_entropy(
            logits[row, :-1], labels[1:], ignore_index=IGNORE, reduction="none"
        )
        starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
        for a, b in zip(starts, starts[1:], strict=False):
            seg = labels[a:b]
            if (seg != IGNORE).any():  # a document, not the padding tail
                n = int((labels[a + 1 : b] != IGNORE).sum())
                out.append(float(token_loss[a : b - 1].double().sum()) / n)
    return out


def test_packed_losses_equal_unpacked(demo_tok, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(demo_tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=256,
            attn_implementation="sdpa",
        )
    ).eval()
    kw = dict(
        tokenizer=demo_tok,
        train_files=None,
        max_length=128,
        cache_dir=str(tmp_path),
        max_records=24,
    )
    packed = PretrainDataModule(pack=True, **kw)
    single = PretrainDataModule(pack=False, **kw)
    packed.setup("fit")
    single.setup("fit")
    ds_p, ds_s = packed.val_dataset, single.val_dataset
    assert len(ds_p) < len(ds_s)  # several documents share a block
    batch_p = packed.collate([ds_p[i] for i in range(len(ds_p))])
    batch_s = single.collate([ds_s[i] for i in range(len(ds_s))])
    lp, ls = sorted(_per_doc_losses(model, batch_p)), sorted(_per_doc_losses(model, batch_s))
    assert len(lp) == len(ls) == packed.stats["val_documents"]
    for a, b in zip(lp, ls, strict=True):
        assert abs(a - b) < 1e-5, (a, b)


def test_pack_without_packing_is_one_document_per_row():
    rows = pack([[1, 2], [1, 3, 4]], capacity=4, pad_id=0, packed=False)
    assert rows["input_ids"] == [[1, 2, 0, 0], [1, 3, 4, 0]]

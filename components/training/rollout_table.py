"""A readable table of rollout samples for the run record: context tail, generation, ground truth, rewards."""

from __future__ import annotations

from components.method.ebft_step import Rollout
from components.method.rlvr_step import RLVRRollout


def rollout_table(rollout: Rollout | RLVRRollout, tokenizer, *, chunks: int = 2, blocks: int = 4,
                  context_tokens: int = 48) -> dict:  # fmt: skip
    if isinstance(rollout, RLVRRollout):
        return answer_table(rollout, tokenizer, prompts=chunks, context_tokens=context_tokens)
    layout = rollout.masks.layout
    ids = rollout.batch.input_ids
    tokens = rollout.samples.tokens
    rewards = rollout.rewards
    nb = layout.num_blocks
    picked = sorted({round(i * (nb - 1) / max(blocks - 1, 1)) for i in range(min(blocks, nb))})
    columns = ("chunk", "block", "sample", "context_tail", "generation", "ground_truth", "alignment", "diversity")
    table: dict[str, list] = {k: [] for k in (*columns, "reward", "advantage", "valid")}
    for b in range(min(chunks, ids.shape[0])):
        for k in picked:
            a = int(layout.context + k * layout.stride)
            context = tokenizer.decode(ids[b, max(0, a - context_tokens) : a].tolist())
            truth = tokenizer.decode(ids[b, a : a + layout.block_len].tolist())
            for i in range(tokens.shape[1]):
                table["chunk"].append(b)
                table["block"].append(k)
                table["sample"].append(i)
                table["context_tail"].append(context)
                table["generation"].append(tokenizer.decode(tokens[b, i, k].tolist()))
                table["ground_truth"].append(truth)
                table["alignment"].append(round(float(rewards.alignment[b, i, k]), 4))
                table["diversity"].append(round(float(rewards.diversity[b, i, k]), 4))
                table["reward"].append(round(float(rewards.reward[b, i, k]), 4))
                table["advantage"].append(round(float(rewards.advantages[b, i, k]), 4))
                table["valid"].append(bool(rewards.valid[0 if rewards.valid.shape[0] == 1 else b, k]))
    return table


def answer_table(rollout: RLVRRollout, tokenizer, *, prompts: int = 2, context_tokens: int = 48) -> dict:
    """RLVR: prompt tail, sampled answer, reference answer, reward and advantage of each sample."""
    table: dict[str, list] = {k: [] for k in ("prompt", "sample", "prompt_tail", "answer", "reference", "reward",
                                               "advantage")}  # fmt: skip
    n = rollout.rewards.shape[-1] if rollout.rewards.dim() == 2 else 0
    for p in range(min(prompts, len(rollout.prompts))):
        tail = tokenizer.decode(rollout.prompts[p][-context_tokens:])
        for i in range(n):
            table["prompt"].append(p)
            table["sample"].append(i)
            table["prompt_tail"].append(tail)
            table["answer"].append(rollout.answers[p * n + i])
            table["reference"].append(rollout.references[p])
            table["reward"].append(round(float(rollout.rewards[p, i]), 4))
            table["advantage"].append(round(float(rollout.advantages[p, i]), 4))
    return table

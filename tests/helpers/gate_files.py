"""Per-example evaluation files, as the evaluate stage writes them, with chosen scores (for the promotion gate)."""

import json

N = 40


def write_eval(folder, alignment, ce, passed=None):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"chunk": i, "tokens": 100 + i, "ce": float(c)} for i, c in enumerate(ce)]
    (folder / "validation_ce.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    rows = [{"chunk": i, "blocks": 15, "alignment": float(a), "alignment_best_of_k": float(a), "diversity": 0.1,
             "cfm_loss": 1 - float(a), "token_match": 0.1} for i, a in enumerate(alignment)]  # fmt: skip
    (folder / "feature_matching.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    if passed is not None:
        rows = [{"task": "humaneval", "task_id": f"HumanEval/{i}", "n": 1, "passed": int(p), "pass@1": float(p)}
                for i, p in enumerate(passed)]  # fmt: skip
        (folder / "code.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder

import json

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from components.data.tiny_models import tiny_causal_lm
from components.engine.policy import StridedPolicy
from components.training.checkpointing import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)


def setup(seed: int):
    accelerator = Accelerator(cpu=True)
    policy = StridedPolicy(tiny_causal_lm("qwen2", seed=seed).train())  # qwen2 ties embeddings and lm_head
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=1, num_training_steps=10)
    policy, optimizer = accelerator.prepare(policy, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    return accelerator, policy, optimizer, scheduler


def train_step(policy, optimizer, scheduler):
    ids = torch.randint(0, 101, (2, 12), generator=torch.Generator().manual_seed(0))
    policy.lm(ids, labels=ids).loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def test_round_trip_restores_weights_optimizer_schedule_and_tied_embeddings(tmp_path):
    accelerator, policy, optimizer, scheduler = setup(seed=0)
    train_step(policy, optimizer, scheduler)
    save_checkpoint(accelerator, tmp_path, TrainingState(step=1, fingerprint="f", history=[{"step": 1}]))
    saved = {k: v.clone() for k, v in policy.state_dict().items()}
    train_step(policy, optimizer, scheduler)  # moves weights, moments and the schedule
    expected_next = {k: v.clone() for k, v in policy.state_dict().items()}

    state = load_checkpoint(accelerator, tmp_path / "step-000001")
    assert state.step == 1 and state.history == [{"step": 1}]
    assert all(torch.equal(saved[k], v) for k, v in policy.state_dict().items())
    assert policy.lm.lm_head.weight is policy.lm.model.embed_tokens.weight  # still tied
    train_step(policy, optimizer, scheduler)  # the same second step again, from restored moments and lr
    assert all(torch.equal(expected_next[k], v) for k, v in policy.state_dict().items())


def test_only_complete_matching_checkpoints_are_resumed(tmp_path):
    accelerator, *_ = setup(seed=1)
    save_checkpoint(accelerator, tmp_path, TrainingState(step=2, fingerprint="a"))
    (tmp_path / ".step-000004.tmp").mkdir()
    assert latest_checkpoint(tmp_path, "a")[0] == tmp_path / "step-000002"
    path, message = latest_checkpoint(tmp_path, "b")
    assert path is None and "made with other params" in message
    assert remove_partial_checkpoints(tmp_path) == [tmp_path / ".step-000004.tmp"]
    assert json.loads((tmp_path / "step-000002/state.json").read_text())["fingerprint"] == "a"

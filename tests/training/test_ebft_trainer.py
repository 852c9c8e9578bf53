"""The TRL-shaped Python API: EBFTConfig maps onto the pipeline's settings without loss, and EBFTTrainer trains a model
and a dataset held in memory, logging to the active MLflow run."""

import mlflow
import pytest
import torch
from datasets import Dataset
from pydantic import ValidationError

from components.data.model_loading import load_model, train_tiny_tokenizer
from components.data.tiny_models import tiny_causal_lm
from components.method.config import EBFTStepConfig
from components.params.loading import load_params
from components.params.presets import apply_preset, available_presets
from components.params.schema import Params
from components.release.tracking import tracking_uri_scope
from components.training.config import TrainerConfig
from components.training.ebft_config import STAGE_ONLY, EBFTConfig, field_homes
from components.training.ebft_trainer import EBFTTrainer
from tests.helpers.project import ROOT

TINY = dict(max_length=48, context_length=8, stride=8, completion_length=8, generation_batch_size=8)


def leaf_paths(model, prefix: str) -> set[str]:
    paths = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if hasattr(type(value), "model_fields") and name not in ("rlvr", "lora", "launch"):
            paths |= leaf_paths(value, f"{prefix}{name}.")
        else:
            paths.add(f"{prefix}{name}")
    return paths


def settings_of(params: Params) -> tuple[TrainerConfig, EBFTStepConfig]:
    trainer = TrainerConfig(**params.train.model_dump(include=set(TrainerConfig.model_fields)))
    return trainer, params.ebft_config()


@pytest.mark.parametrize("preset", [None, *available_presets()])
def test_the_stage_settings_survive_the_round_trip_through_ebft_config(preset):
    raw = load_params(ROOT / "params.yaml").model_dump()
    params = Params(**(apply_preset(raw, preset) if preset else raw))
    trainer, step = settings_of(params)
    back_trainer, back_step = EBFTConfig.from_settings(trainer, step).to_settings()
    assert back_step == step
    assert back_trainer == trainer.model_copy(update={k: TrainerConfig.model_fields[k].get_default(
        call_default_factory=True) for k in STAGE_ONLY})  # fmt: skip


def test_every_setting_of_the_loop_and_the_step_has_a_name_in_ebft_config():
    trainer, step = settings_of(load_params(ROOT / "params.yaml"))
    mapped = set(field_homes().values()) | {"trainer.optimizer.betas", "trainer.micro_batch_chunks",
                                            "trainer.mixed_precision"}  # fmt: skip
    needed = leaf_paths(trainer, "trainer.") - {f"trainer.{k}" for k in STAGE_ONLY} | leaf_paths(step, "step.")
    assert needed - mapped == set()


def test_docs_name_every_field():
    page = (ROOT / "docs/api.md").read_text()
    assert [name for name in EBFTConfig.model_fields if f"| `{name}` |" not in page] == []


def test_trl_names_and_typos_get_an_answer():
    with pytest.raises(ValidationError, match="'gradient_accumulation_steps': set generation_batch_size"):
        EBFTConfig(gradient_accumulation_steps=4)
    with pytest.raises(ValidationError, match="'learing_rate': did you mean learning_rate"):
        EBFTConfig(learing_rate=1e-5)
    with pytest.raises(ValidationError, match="per_device_train_batch_size=6 must be a multiple of num_generations=4"):
        EBFTConfig(per_device_train_batch_size=6)
    with pytest.raises(ValidationError, match=r"nearest valid seq_len: 96 or 104 .*max_length = L"):
        EBFTConfig(max_length=100)


@pytest.fixture(scope="module")
def tiny():
    """A fresh tiny model per call (the trainer trains the model it is given, as TRL's do), its tokenizer, data."""
    tokenizer = train_tiny_tokenizer()
    rows = [
        {"prompt": f"What is {a} plus {b}? ", "completion": f"{a} plus {b} is {a + b}, as {a + b} minus {b} is {a}."}
        for a in range(10)
        for b in range(10)
    ]

    def new_model():
        return tiny_causal_lm("llama", vocab_size=len(tokenizer))

    return new_model, tokenizer, Dataset.from_list(rows)


def test_trainer_on_an_in_memory_dataset_logs_to_the_active_mlflow_run(tiny, tmp_path):
    new_model, tokenizer, dataset = tiny
    args = EBFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, learning_rate=1e-3, completion_only_loss=True,
                      log_completions_steps=1, **TINY)  # fmt: skip
    # the user's own store; the exact previous URI and environment come back afterwards
    with tracking_uri_scope(f"sqlite:///{tmp_path / 'mlruns.db'}"):
        with mlflow.start_run() as run:
            trainer = EBFTTrainer(new_model(), args, train_dataset=dataset, processing_class=tokenizer)
            result = trainer.train()
            assert mlflow.active_run().info.run_id == run.info.run_id  # the user's run stays open
        client = mlflow.MlflowClient()
        logged = client.get_run(run.info.run_id).data
        history = client.get_metric_history(run.info.run_id, "reward")
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "rollouts")]
    assert result.run_id == run.info.run_id and result.steps == 2
    assert [m.step for m in history] == [1, 2] and history[-1].value == pytest.approx(result.history[-1]["reward"])
    assert {"alignment", "diversity", "ce", "grad_norm"} <= set(logged.metrics)
    assert logged.params["ebft.learning_rate"] == "0.001" and logged.tags["method"] == "ebft"
    assert artifacts == ["rollouts/step_00001.json", "rollouts/step_00002.json"]
    saved = trainer.save_model()
    ids = torch.randint(3, 200, (1, 10))
    with torch.no_grad(), trainer.trained_model() as final:
        assert torch.allclose(final(ids).logits, load_model(saved)(ids).logits, atol=1e-5)
        assert not torch.allclose(final(ids).logits, new_model()(ids).logits, atol=1e-3)  # it trained


def test_answers_too_short_for_a_block_are_refused_with_completion_only_loss(tiny, tmp_path):
    new_model, tokenizer, _ = tiny
    short = [{"prompt": f"What is {a} plus {b}? ", "completion": f"{a + b}"} for a in range(10) for b in range(10)]
    args = EBFTConfig(output_dir=str(tmp_path), max_steps=1, completion_only_loss=True, **TINY)
    with pytest.raises(ValueError, match="no block of completion_length=8 tokens lies inside an answer"):
        EBFTTrainer(new_model(), args, short, tokenizer)


def test_flex_attention_is_refused_for_training_on_cpu_before_any_step(tiny, tmp_path):
    new_model, tokenizer, dataset = tiny
    args = EBFTConfig(output_dir=str(tmp_path), max_steps=1, forward_mode="flex", **TINY)
    with pytest.raises(ValueError, match="'flex' trains only on CUDA: FlexAttention has no backward on CPU"):
        EBFTTrainer(new_model(), args, dataset, tokenizer)


def test_rlvr_on_chunks_too_short_for_a_whole_document_is_refused(tiny, tmp_path):
    new_model, tokenizer, dataset = tiny
    short = TINY | {"max_length": 24}  # documents take about 40 tokens
    args = EBFTConfig(output_dir=str(tmp_path), max_steps=1, **short)
    with pytest.raises(ValueError, match=r"method='rlvr': none of the .* chunks of 24 tokens holds a whole prompt"):
        EBFTTrainer(new_model(), args, dataset, tokenizer, method="rlvr")
    longer = EBFTConfig(**{**args.model_dump(), "max_length": 144, "rlvr": {"max_new_tokens": 4}})
    result = EBFTTrainer(new_model(), longer, dataset, tokenizer, method="rlvr").train()
    assert result.history[-1]["prompts"] > 0


def test_a_second_trainer_resumes_from_the_checkpoint_of_the_same_run(tiny, tmp_path, capsys):
    new_model, tokenizer, dataset = tiny
    args = EBFTConfig(output_dir=str(tmp_path), max_steps=2, save_steps=1, learning_rate=1e-3, **TINY)
    first = EBFTTrainer(new_model(), args, dataset, tokenizer).train()
    again = EBFTTrainer(new_model(), args, dataset, tokenizer).train()
    assert "resuming from" in capsys.readouterr().out and again.history == first.history
    EBFTTrainer(new_model(), args.model_copy(update={"learning_rate": 1e-4}), dataset, tokenizer).train()
    assert "(made with other params, data or base model)" in capsys.readouterr().out


def test_peft_config_trains_only_the_adapters(tiny, tmp_path):
    from peft import LoraConfig

    new_model, tokenizer, dataset = tiny
    args = EBFTConfig(output_dir=str(tmp_path), max_steps=1, learning_rate=1e-2, **TINY)
    trainer = EBFTTrainer(new_model(), args, dataset, tokenizer, LoraConfig(r=4, target_modules="all-linear"))
    trainer.train()
    out = trainer.save_model(adapter=True)
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    with pytest.raises(ValueError, match=r"LoRA target_modules \['nope'\] are not modules of LlamaForCausalLM"):
        EBFTTrainer(new_model(), args, dataset, tokenizer, LoraConfig(r=4, target_modules=["nope"]))

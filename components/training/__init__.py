"""The training loop shared by EBFT and SFT: its settings, accelerate set-up and relaunch, LoRA, checkpoints and
exact resume, memory figures, rollout tables and the run record (summary, curves, model card)."""

"""What a run folder of ``tupe-glue`` finetuned, so that a later sweep into the same ``--out``
reuses a result only for the same finetune (docs/finetuning.md).

Each run folder gets ``command.json`` when its finetune starts: the train.py flags (the data
folder resolved; the run's own folders and the model's path left out) and the pretrained
model's SHA-256 (the same model under another path is the same finetune; another model under the
same path is not)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..checkpoint import sha256_file

# What a run was finetuned from, written into its folder when it starts: a later sweep into the
# same --out reuses its result only if it would run the same finetune.
RUN_RECORD = "command.json"
_OWN_PATHS = ("--save-dir", "--tensorboard-logdir", "--restore-file")   # the run's own folder; the model by content


def model_fingerprint(checkpoint: Path) -> str:
    """SHA-256 of the pretrained model's file (a checkpoint, or an own-format/transformers folder's
    weights): the same model under another path is the same, another model under the same path is not."""
    weights = checkpoint if checkpoint.is_file() else next(
        (checkpoint / name for name in ("model.safetensors", "pytorch_model.bin") if (checkpoint / name).is_file()),
        None)
    return sha256_file(weights) if weights is not None else str(checkpoint.resolve())


def run_record(cmd: list[str], fingerprint: str) -> dict:
    """What decides a finetune's result: its train.py flags (the data folder resolved; its own
    folders and the model's path left out) and the model's fingerprint."""
    flags, skip = [], False
    for i, arg in enumerate(cmd):
        if skip:
            skip = False
            continue
        if arg in _OWN_PATHS:
            skip = True
            continue
        flags.append(str(Path(arg).resolve()) if i == 0 else arg)
    return {"flags": flags, "model_sha256": fingerprint}


def _flag_values(flags: list[str]) -> dict[str, Optional[str]]:
    out, i = {"DATA": flags[0] if flags else None}, 1
    while i < len(flags):
        value = flags[i + 1] if i + 1 < len(flags) and not flags[i + 1].startswith("--") else None
        out[flags[i]] = value
        i += 2 if value is not None else 1
    return out


def record_differences(recorded: dict, now: dict) -> list[str]:
    """How a recorded run differs from the one a sweep would run now, in words."""
    out = []
    if recorded.get("model_sha256") != now["model_sha256"]:
        out.append("another pretrained model (--checkpoint's content differs)")
    old, new = _flag_values(recorded.get("flags", [])), _flag_values(now["flags"])

    def shown(values: dict, flag: str) -> str:
        return "absent" if flag not in values else "on" if values[flag] is None else values[flag]

    for flag in [*old, *(f for f in new if f not in old)]:
        if shown(old, flag) != shown(new, flag):
            out.append(f"{flag} {shown(old, flag)} then, {shown(new, flag)} now")
    return out

"""Checkpoints, one concern per module (see docs/checkpoints.md):

* ``safe``: reading a training checkpoint safely (allow-listed unpickling, archive check) and
  its integrity (SHA-256 manifest); finding the file in a run directory;
* ``fairseq``: the original layout: names both ways, config from ``args`` and shapes, writing;
* ``native``: the project's own format (config.json + model.safetensors, no pickle);
* ``hf``: transformers folders (tupe.hf), read without transformers;
* ``electra``: ELECTRA checkpoints (discriminator, generator, replaced-token head);
* ``loading``: ``load_model`` / ``read_config`` for any of them;
* ``run``: a training run's checkpoint names, save transaction and retention.

The names below are the public API (``tupe.load_model``, ``tupe.save_pretrained``, ...).
"""

from .electra import load_electra, load_electra_state
from .errors import BPE_FILE, CONFIG_FILE, DICT_FILE, LABELS_FILE, TEXT_FILE, WEIGHTS_FILE, CheckpointError
from .fairseq import (
                      ENC,
                      LM,
                      build_and_load,
                      checkpoint_tensors,
                      config_from_checkpoint,
                      discriminator_of,
                      fairseq_args,
                      fairseq_state_dict,
                      fresh_lm_head,
                      from_fairseq_name,
                      lm_head_trained,
                      progress_of,
                      save_fairseq,
                      to_fairseq_name,
)
from .hf import HF_CLASSIFIER, HF_ENCODER, hf_state_dict, is_hf_folder, load_hf_folder
from .loading import load_model, load_model_and_run_args, load_vocabulary, read_config
from .native import (
                      Vocabulary,
                      casing_of,
                      check_data_dictionary,
                      check_replaceable,
                      load_pretrained,
                      load_safetensors,
                      read_pretrained_config,
                      read_vocabulary,
                      save_pretrained,
                      write_casing,
)
from .safe import (
                      MANIFEST,
                      SAFE_GLOBALS,
                      check_archive,
                      read_checkpoint,
                      read_manifest,
                      resolve_checkpoint,
                      sha256_file,
                      verify_checksum,
                      write_manifest,
)

__all__ = ["BPE_FILE", "CONFIG_FILE", "DICT_FILE", "ENC", "HF_CLASSIFIER", "HF_ENCODER", "LABELS_FILE", "LM", "MANIFEST",
           "SAFE_GLOBALS", "TEXT_FILE", "WEIGHTS_FILE", "CheckpointError", "Vocabulary", "build_and_load",
           "casing_of", "check_archive", "check_data_dictionary", "check_replaceable", "checkpoint_tensors",
           "config_from_checkpoint", "discriminator_of",
           "fairseq_args", "fairseq_state_dict", "fresh_lm_head", "from_fairseq_name", "hf_state_dict", "is_hf_folder",
           "lm_head_trained", "load_electra", "load_electra_state", "load_hf_folder", "load_model",
           "load_model_and_run_args", "load_pretrained", "load_safetensors", "load_vocabulary", "progress_of",
           "read_checkpoint", "read_config", "read_manifest", "read_pretrained_config", "read_vocabulary",
           "resolve_checkpoint", "save_fairseq", "save_pretrained", "sha256_file",
           "to_fairseq_name", "verify_checksum", "write_casing", "write_manifest"]

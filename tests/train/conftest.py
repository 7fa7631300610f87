def tiny_args(data, save, *extra, cpu=True):
    """A tiny TUPE-R run; on the CPU unless ``cpu=False`` (bitwise resume is a CPU property)."""
    return [str(data), *(["--cpu"] if cpu else []), "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "bert_tiny",
            "--sample-break-mode", "complete", "--tokens-per-sample", "32", "--optimizer", "adam",
            "--adam-betas", "(0.9, 0.999)", "--adam-eps", "1e-6", "--clip-norm", "1.0",
            "--lr-scheduler", "polynomial_decay", "--lr", "0.003", "--warmup-updates", "3",
            "--total-num-update", "200", "--max-sentences", "8", "--seed", "1", "--mask-prob", "0.15",
            "--embedding-normalize", "--log-format", "simple", "--log-interval", "1", "--save-dir", str(save),
            "--rel-pos", "--num-workers", "0", "--skip-invalid-size-inputs-valid-test", *extra]

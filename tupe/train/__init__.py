"""The training engine: fairseq's command line, masked-LM task, Adam, AMP, DDP, checkpoints."""

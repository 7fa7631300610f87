"""Preprocessing pipelines of the original TUPE scripts: pretraining corpus and GLUE."""

"""Trained models: restore one from a checkpoint or a run folder, and score, predict, export or explain with it."""

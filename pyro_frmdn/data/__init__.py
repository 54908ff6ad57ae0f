"""Data sets: synthetic tasks built in (no download); real data sets behind optional extras."""

from .synthetic import TASKS, banana_sequences, branching_trajectories, inverse_sine, make_task

__all__ = ["TASKS", "banana_sequences", "branching_trajectories", "inverse_sine", "make_task"]

"""The command lines: each module parses one command and calls the layer below that does the work.

`python -m fer_ablation.<command>` runs `fer_ablation/<command>.py`, which only calls the `main` here.
"""

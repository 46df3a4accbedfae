"""The paper's evaluation benchmarks (MathVista, M3CoT, MMStar-R, MMBench-R, AI2D) read from their published files.

Each benchmark module turns rows of its published layout into `BenchItem`s (a `Prompt` in the project's response
format plus what scoring needs) and scores a response by its own rules; `results` aggregates and tabulates,
`registry` names them, and `runner` runs a whole evaluation over a rollout group.
"""

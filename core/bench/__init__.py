"""Benchmarks: prompt × generation timing, continuous batching, memory-bandwidth roofline.

Headless (no UI imports). MLX work runs on the engine thread: submit `run_suite` as a job.
"""

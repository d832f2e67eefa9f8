"""The benchmark (issue 6): figures of the real service as ratios against raw baselines.

Run `python -m bench --help`. Everything is started by the benchmark itself: the embedded
broker, the service as a child process per store, and the baselines in the same run.
"""

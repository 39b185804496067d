"""Stress suites (pytest modules): memcheck against the baselines, threads, processes sharing a cache, cache stress.

Quick tier by default; tests marked ``full`` (``pytest --full``) run at nightly scale.
"""

"""Benchmarks of the product as its users feel it, on the local stack over real HTTP.

`python -m bench` runs them all (or some: `python -m bench status coldstart`), saves the figures to
docs/benchmarks.json and writes docs/benchmarks.md and its plots from that JSON.
"""

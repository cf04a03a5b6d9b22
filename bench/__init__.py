"""socialbot's speed benchmark: drain throughput, cold start, big queues and a big log.

Run it with ``make bench`` (``python bench/drain.py``); the README's "Speed" section explains
the figures.
"""

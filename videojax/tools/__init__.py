"""Tools around a trained run: evaluate (ensembles, test-time views), predict, report, plots, ablate.

They import the core (train, extract, metrics, runs); nothing in the core imports them.
"""

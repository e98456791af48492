"""PEFT on GLUE: task table, data, tokenization, methods, metrics, training, run records, plots, report.

One module per step; nothing runs on import. See README.md for the command line and notebooks.
"""

__version__ = "0.1.0"

"""Results: the table (``table.py``; its cells, published numbers, rows' pretraining, text and the registries'
metadata in ``cells.py``, ``paper_numbers.py``, ``row_pretraining.py``, ``table_text.py``, ``registered.py``),
its statistics (``stats.py``), the analyses behind the figures (``analyses.py``), figures, report and
``bench reproduce``.

Everything here renders from stored result records (``ssl_bench/records.py``); nothing reads a live run.
"""

# The paper's Table 2 rows and columns (PAPER.md §4) that ``bench reproduce`` runs by default.
DEFAULT_METHODS = ("context_encoder", "autoencoder", "random", "datainit", "supervised")
DEFAULT_TASKS = ("cls", "det", "seg")

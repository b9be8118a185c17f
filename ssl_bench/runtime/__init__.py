"""The runtime that pretraining and evaluation share, below both: device and autocast choices
(``performance``), learning-rate schedules (``schedules``), DDP (``distributed``), checkpoints
(``checkpoint``) and reading a pretraining run folder (``run_folder``).

``training/`` (pretraining) and ``evaluators/`` (transfer) are siblings above this layer and never import
each other.
"""

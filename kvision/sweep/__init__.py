"""Hyper-parameter sweeps: the study loop (``study``), its search space (``search_space``), the ranked
report (``report``) and the ``kvision sweep`` command (``commands``). Each trial is a normal run
directory written by ``kvision run``."""

"""A node's processes (`--processes N`): one control process, N data-plane processes.

`supervisor.py` (control process) starts, restarts and drains the data-plane
children; `parent.py` ties a child to its control process; `handover.py` passes the
requests a data-plane process does not serve itself to the control process.
"""

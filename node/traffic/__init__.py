"""The traffic summary behind `GET /ha/traffic` and the console's Traffic view: each
process's bounded ring of 10 s buckets (ring.py), how rings are merged and read out as
chart columns (summary.py), and how a node gathers its processes' and peers' (gather.py)."""

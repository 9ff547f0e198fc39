"""The data dir is private to the node's user: 0700, and every file in it 0600.

It holds the Raft journal and snapshots (every worker record, key digest and
tenant), the audit log and the mesh secret. Files there must never be
readable by another local user, whatever umask the node was started with
(containers and init systems often start processes with 0022 or 0000). So
`meshgate serve` sets its umask to 0077 before it creates anything (so
pysyncobj's journal and snapshots, the audit log and the secret are created
private), and the node tightens whatever an earlier run or a copy left looser.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077  # what `meshgate serve` runs with: files 0600, dirs 0700


def make_private(data_dir: Path) -> None:
    """Create `data_dir` if needed; make it and everything under it owner-only."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(data_dir, DIR_MODE)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            _tighten(Path(root, name), DIR_MODE)
        for name in files:
            _tighten(Path(root, name), FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return  # never follow a link out of the data dir
    if stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)

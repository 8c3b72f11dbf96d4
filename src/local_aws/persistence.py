"""Keeps moto's state (DynamoDB tables and items, SQS queues and messages, EventBridge buses, rules
and targets) across a restart of a local AWS that has a data directory of its own.

moto holds its state in memory, in one backend object per service, account and region; it has no
persistence of its own in server mode. `save` pickles those backends into the data directory when
the local AWS stops, `restore` puts them back before it serves again, so `promoter local --data DIR`
keeps the promoter's history, idempotency records, gates and queues as it keeps the images (which
the registry and `ecr.sqlite3` already hold on disk).

What is lost: changes since the last save when the process is killed (SIGKILL, a crash); `stop()`
saves, and `promoter local` calls it on Ctrl-C and SIGTERM. The file is a pickle: read only a data
directory you wrote.
"""

from __future__ import annotations

import copyreg
import io
import logging
import os
import pickle
import threading
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
STATE_FILE = "moto-state.pickle"
# The moto services whose state the promoter and the CLI rely on (STS keeps none worth keeping).
PERSISTED_SERVICES = ("dynamodb", "sqs", "events")
# Where a state file that cannot be read is moved, so the next save does not overwrite it.
UNREADABLE_SUFFIX = ".unreadable"
# moto's backends hold locks (SQS queues wait on a Condition): a lock is saved as a new, free one.
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _fresh_lock(lock: Any) -> tuple[Any, tuple[()]]:
    return (threading.RLock if isinstance(lock, _LOCK_TYPES[1]) else threading.Lock), ()


def _backends(service: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)  # type: ignore[call-overload]


def snapshot() -> dict[str, dict[tuple[str, str], Any]]:
    """The persisted services' backends, by service and (account, region)."""
    return {
        service: {
            (account, region): backend
            for account, regions in list(_backends(service).items())
            for region, backend in list(regions.items())
        }
        for service in PERSISTED_SERVICES
    }


def save(data_dir: Path) -> Path:
    """Writes moto's state into `data_dir` (atomically: a reader sees the old file or the new one).
    Call it when no request is being served. Raises OSError or pickle.PicklingError."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    for lock_type in _LOCK_TYPES:
        pickler.dispatch_table[lock_type] = _fresh_lock
    pickler.dump(snapshot())
    path = data_dir / STATE_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)
    return path


def restore(data_dir: Path) -> bool:
    """Puts back the state `save` wrote into `data_dir`, replacing what moto holds for those
    accounts and regions; False when there is none. A file that cannot be read (another moto
    version, say) is logged at ERROR and moved aside, and the local AWS starts without it."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return False
    try:
        state = pickle.loads(path.read_bytes())
    except Exception:
        aside = path.with_name(path.name + UNREADABLE_SUFFIX)
        LOG.exception("could not read the local AWS state %s; starting without it (kept as %s)", path, aside)
        os.replace(path, aside)
        return False
    for service, backends in state.items():
        if service not in PERSISTED_SERVICES:
            continue
        backend_dict = _backends(service)
        for (account, region), backend in backends.items():
            backend_dict[account][region] = backend
    return True

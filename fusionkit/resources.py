"""What the machine has free for a run: CPU cores that are not busy, and memory (Linux, cgroups, CUDA).

A user's machine is never idle. PyTorch starts as many threads as there are cores; when another process holds a
core, the threads of one parallel region wait for each other behind it and the run gets many times slower, not
a little slower. So a run sizes its thread pool from the cores that are idle when it starts, and plans its
memory from what is available to it (the container's limit included), not from what the machine has installed.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; the machine's count where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [float(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)   # idle + iowait
    total = sum(values[:8])                                        # guest time is already counted in user
    return total - idle, total


def busy_cores(sample_seconds: float = 0.2) -> float | None:
    """How many cores other processes keep busy, measured over a short sleep of this process (so its own work is
    not counted); None where /proc/stat is not available."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_seconds)
    second = _cpu_times()
    busy, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return None
    machine = os.cpu_count() or 1
    return busy / total * machine


_BUSY_CACHE: dict[str, float] = {}


def cpu_threads(setting: int | str) -> int:
    """Threads for a CPU run: ``setting`` when it is a number. For ``auto``: the process's own thread setting
    (``torch.get_num_threads()``: the cores, or what ``OMP_NUM_THREADS`` or the caller chose), lowered to the
    usable cores that other processes leave idle, at least 1. So ``auto`` never adds threads to what the caller
    allowed, and yields cores that are taken. The load is measured at most every 30 s (a sweep of many small
    runs does not pay the short sample each time)."""
    if setting != "auto":
        return int(setting)
    allowed = torch.get_num_threads()
    now = time.monotonic()
    if now - _BUSY_CACHE.get("at", -1e9) > 30:
        busy = busy_cores()
        _BUSY_CACHE.update(at=now, busy=-1.0 if busy is None else busy)
    busy = _BUSY_CACHE["busy"]
    if busy < 0:
        return allowed
    idle = int(usable_cores() - busy + 0.5)
    return max(1, min(allowed, idle))


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), or None when there is no limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            raw = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if raw == "max":
            return None
        limit = int(raw)
        if limit >= 1 << 60:   # v1's "no limit" is a huge number
            return None
        return max(0, limit - usage)
    return None


def available_memory(device: torch.device) -> int | None:
    """Bytes a run may still allocate on ``device``: CUDA's free memory; on the CPU the smaller of Linux's
    MemAvailable and what the cgroup (container) limit leaves. None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    limit = _cgroup_free()
    if limit is not None:
        free = limit if free is None else min(free, limit)
    return free

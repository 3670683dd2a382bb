"""Keeping the runs that share a worker process apart.

A worker executes run after run. What one run changes of the process must not reach the
next, and what it starts must not outlive it:
- `ProcessState.capture()` at the worker's start, `restore()` after each run that ran
  Python in the worker (not after a command, which runs as a child process): resource
  limits, umask, signal handlers, the signal mask and pending timers, the recursion limit,
  the socket default timeout, the locale, gc settings, trace/profile hooks, warnings
  filters, and the attributes (module globals, class attributes) of every module loaded
  when the worker started (the standard library's and qaflow's), so a run that
  monkeypatches `json` leaves the next one a working `json`. What cannot be put back (a
  lowered hard limit, a thread the run left running) retires the worker after this run:
  the pool replaces it by a fresh one.
- Modules first imported by a run (a helper module of the project, a library) are
  protected too: an import hook (`ImportWatcher`, first on `sys.meta_path`) snapshots a
  module's globals and its classes' attributes right after the module's code has run,
  before the run that imported it can patch it, into the same `Attributes`: the next run
  finds the module as it was imported. It sees what goes through the import system
  (finders and loaders); a loader that is a class (built-in and frozen modules) or takes
  no attribute is not watched, and neither is the entrypoint (imported by path, again
  when its file changes).
- Limitation: what is *rebound* is put back, not what is *mutated in place*. A run that
  changes a module's dict, list or object (`config.SETTINGS["x"] = 1`,
  `some_list.append(…)`, an attribute of an instance) leaves that change to the next run
  on the same worker; copying every such value before each run would cost each run far
  more than restoring does. Keep per-run state in the run, not in module-level objects.
- `end_descendants()` after each run: the worker is a child subreaper (Linux), so what
  the run started (children, daemons that double-forked and called setsid) stays its
  descendant; every one is killed and reaped. A daemon cannot keep the caller's stdout
  open or outlive `qa`.
- `exit_if_forked(owner)`: a run that forked without exec returns into qaflow's code in
  the child too; that copy exits at once, it never writes results nor talks to the pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import locale
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_PR_SET_CHILD_SUBREAPER = 36
_MISSING = object()
_KILL_DEADLINE = 5.0  # seconds to wait for the run's processes to be gone (SIGKILL'd)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
_TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process instead of init (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------- processes
def children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's), from /proc; [] where unavailable."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text("ascii").split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every living descendant of `pid`, parents before their children."""
    found: list[int] = []
    queue = children(pid)
    while queue:
        child = queue.pop(0)
        if child in found or child == pid:
            continue
        found.append(child)
        queue.extend(children(child))
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL every descendant of `pid` (not `pid` itself); the pids killed."""
    killed = descendants(pid)
    for child in killed:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
    return killed


def end_descendants() -> int:
    """Kill every process this one started (directly or not) and reap them; how many.

    Loops until none is left: a process may fork while its siblings are being killed."""
    me = os.getpid()
    ended: set[int] = set()
    deadline = time.monotonic() + _KILL_DEADLINE
    while True:
        if not _reap():  # no child at all, so no descendant: orphans are re-parented to us
            return len(ended)
        living = [pid for pid in descendants(me) if not _zombie(pid)]
        if not living or time.monotonic() > deadline:
            _reap()
            return len(ended)
        for pid in living:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        ended.update(living)
        time.sleep(0.005)


def _reap() -> bool:
    """Collect the exit status of every child that ended (adopted orphans included); whether
    a child is left (one still running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("ascii", errors="replace")
        return stat.rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone


def exit_if_forked(owner: int, code: int = 0) -> None:
    """In a copy of the worker that the run forked (without exec): exit now, silently."""
    if os.getpid() != owner:
        os._exit(code)


# ---------------------------------------------------------------- the process's state
@dataclass
class ProcessState:
    """What a run may change of its process, as it was; `restore()` puts it back."""

    umask: int
    rlimits: dict[int, tuple[int, int]]
    handlers: dict[int, Any]
    mask: set[Any]
    recursion_limit: int
    socket_timeout: float | None
    locale: str | None
    gc_enabled: bool
    gc_threshold: tuple[int, ...]
    switch_interval: float
    trace: Any
    profile: Any
    warning_filters: list[Any]
    threads: set[threading.Thread]
    attributes: Attributes | None = None
    watcher: ImportWatcher | None = None

    @classmethod
    def capture(cls) -> ProcessState:
        """The state now (in the main thread: signal handlers are only set there); from now
        on, each module imported is snapshotted as its import ends (`ImportWatcher`)."""
        umask = os.umask(0)
        os.umask(umask)
        attributes = Attributes.capture()
        watcher = ImportWatcher.install(attributes)
        return cls(
            umask=umask,
            rlimits=_rlimits(),
            handlers=_handlers(),
            mask=signal.pthread_sigmask(signal.SIG_BLOCK, []),
            recursion_limit=sys.getrecursionlimit(),
            socket_timeout=socket.getdefaulttimeout(),
            locale=_locale(),
            gc_enabled=gc.isenabled(),
            gc_threshold=gc.get_threshold(),
            switch_interval=sys.getswitchinterval(),
            trace=sys.gettrace(),
            profile=sys.getprofile(),
            warning_filters=list(warnings.filters),
            threads=set(threading.enumerate()),
            attributes=attributes,
            watcher=watcher,
        )

    def restore(self) -> list[str]:
        """Put the state back; what could not be (the worker should then retire)."""
        problems: list[str] = []
        self._restore_process(problems)
        self._restore_interpreter()
        if self.attributes is not None:
            self.attributes.restore()
        if self.watcher is not None and self.watcher not in sys.meta_path:
            sys.meta_path.insert(0, self.watcher)  # the run took it out
        left = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        if left:
            problems.append(f"threads left running: {', '.join(t.name for t in left)}")
        return problems

    def _restore_process(self, problems: list[str]) -> None:
        os.umask(self.umask)
        for which, limits in self.rlimits.items():
            if _getrlimit(which) != limits:
                try:
                    _setrlimit(which, limits)
                except (OSError, ValueError) as exc:
                    problems.append(f"resource limit {which}: {exc}")
        for timer in _TIMERS:
            signal.setitimer(timer, 0)
        for number, handler in self.handlers.items():
            if signal.getsignal(number) is not handler:
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        if self.locale is not None and _locale() != self.locale:
            with contextlib.suppress(locale.Error):
                locale.setlocale(locale.LC_ALL, self.locale)

    def _restore_interpreter(self) -> None:
        sys.setrecursionlimit(self.recursion_limit)
        socket.setdefaulttimeout(self.socket_timeout)
        (gc.enable if self.gc_enabled else gc.disable)()
        gc.set_threshold(*self.gc_threshold)
        sys.setswitchinterval(self.switch_interval)
        sys.settrace(self.trace)
        sys.setprofile(self.profile)
        warnings.filters[:] = self.warning_filters  # type: ignore[index]
        warnings._filters_mutated()  # type: ignore[attr-defined]


def _rlimits() -> dict[int, tuple[int, int]]:
    import resource

    limits: dict[int, tuple[int, int]] = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            which = getattr(resource, name)
            with contextlib.suppress(OSError, ValueError):
                limits[which] = resource.getrlimit(which)
    return limits


def _getrlimit(which: int) -> tuple[int, int]:
    import resource

    return resource.getrlimit(which)


def _setrlimit(which: int, limits: tuple[int, int]) -> None:
    import resource

    resource.setrlimit(which, limits)


def _handlers() -> dict[int, Any]:
    handlers: dict[int, Any] = {}
    for number in signal.valid_signals():
        if number in _UNCATCHABLE:
            continue
        with contextlib.suppress(OSError, ValueError):
            handler = signal.getsignal(number)
            if handler is not None:  # None: set outside Python, cannot be set back from here
                handlers[number] = handler
    return handlers


def _locale() -> str | None:
    try:
        return locale.setlocale(locale.LC_ALL)
    except locale.Error:
        return None


_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: a built-in type, no attribute can change


class Attributes:
    """The globals of every loaded module and the attributes of the classes they define
    (those that can be set), as they were; `restore()` puts back what a run rebound.
    `add(module)` takes in a module imported later (`ImportWatcher`), as it is then.

    The common case, nothing changed, is one C-level comparison of lists of values (identity
    first) over every namespace at once: about 1 ms for a worker's ~180 modules and ~700
    classes. A class's namespace is held as its live mappingproxy."""

    def __init__(self, modules: dict[str, Any], namespaces: list[Any], owners: list[Any]):
        self.modules = modules  # name -> module, put back in sys.modules if replaced
        self.namespaces = namespaces  # module dicts, then class mappingproxies
        self.owners = owners  # None for a module's dict, the class for a class's namespace
        self.saved = [dict(namespace) for namespace in namespaces]
        self.values = [list(namespace.values()) for namespace in namespaces]
        # `add` runs in whichever thread imports; re-entrant: restoring may import (a value's __eq__)
        self._lock = threading.RLock()

    @classmethod
    def capture(cls) -> Attributes:
        modules: dict[str, Any] = {}
        namespaces: list[Any] = []
        owners: list[Any] = []
        classes: list[type] = []
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict) or name == "__main__":
                continue
            modules[name] = module
            namespaces.append(namespace)
            owners.append(None)
            classes.extend(_classes_of(name, namespace))
        namespaces.extend(vars(value) for value in classes)
        owners.extend(classes)
        return cls(modules, namespaces, owners)

    def add(self, module: ModuleType) -> None:
        """Snapshot `module` (imported since `capture`) as it is now: its globals and classes."""
        name = getattr(module, "__name__", None)
        namespace = getattr(module, "__dict__", None)
        if not isinstance(name, str) or not isinstance(namespace, dict) or name == "__main__":
            return
        if sys.modules.get(name) is not module:  # it put another object in its place
            return
        classes = list(_classes_of(name, namespace))
        with self._lock:
            if name in self.modules:
                return
            self.modules[name] = module
            for space, owner in [(namespace, None), *((vars(c), c) for c in classes)]:
                self.namespaces.append(space)
                self.owners.append(owner)
                self.saved.append(dict(space))
                self.values.append(list(space.values()))

    def restore(self) -> None:
        with self._lock:
            self._restore()

    def _restore(self) -> None:
        # a value's __eq__ may import (re-entering `add` in this thread): only the namespaces
        # known at the start are restored, the lists may grow meanwhile
        count = len(self.namespaces)
        for name, module in self.modules.items():  # (nothing here imports)
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
        namespaces, values = self.namespaces, self.values
        if len(values) != count:  # `add` ran between the two reads above
            namespaces, values = namespaces[:count], values[:count]
        try:
            current: list[list[Any]] | None = [list(n.values()) for n in namespaces]
            if current == values:
                return
        except Exception:  # a value whose == raises: compared namespace by namespace below
            current = None
        for i in range(count):
            namespace = self.namespaces[i]
            if current is not None and _equal(current[i], self.values[i]):
                continue
            owner = self.owners[i]
            for key, value in self.saved[i].items():
                if namespace.get(key, _MISSING) is not value:
                    if owner is None:
                        namespace[key] = value
                    else:
                        with contextlib.suppress(AttributeError, TypeError):
                            setattr(owner, key, value)
            self.values[i] = list(namespace.values())


def _classes_of(name: str, namespace: dict[str, Any]) -> Iterator[type]:
    """The classes module `name` defines whose attributes can be set."""
    for value in list(namespace.values()):
        if (
            isinstance(value, type)
            and value.__module__ == name
            and not value.__flags__ & _IMMUTABLE_TYPE
        ):
            yield value


def _equal(current: list[Any], saved: list[Any]) -> bool:
    try:
        return bool(current == saved)
    except Exception:
        return False


class ImportWatcher:
    """A meta path finder (not importing importlib.abc: ~20 more modules to restore), first on `sys.meta_path`: finds what the finders after it find, and has the loader
    hand each module it executes to `Attributes.add` (its `exec_module`, wrapped on that
    loader instance: the module's `__loader__` and `__spec__` stay the finder's own)."""

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self._finding = threading.local()  # a finder that imports must not come back here

    @classmethod
    def install(cls, attributes: Attributes) -> ImportWatcher:
        for finder in list(sys.meta_path):
            if isinstance(finder, cls):
                sys.meta_path.remove(finder)
        watcher = cls(attributes)
        sys.meta_path.insert(0, watcher)
        return watcher

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            spec = self._others(fullname, path, target)
        finally:
            self._finding.active = False
        if spec is not None and spec.loader is not None:
            self._watch(spec.loader)
        return spec

    def _others(self, fullname: str, path: Any, target: Any) -> Any:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:  # a legacy finder: leave the whole search to the import system
                return None
            spec = find(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _watch(self, loader: Any) -> None:
        if isinstance(loader, type) or getattr(loader, "_qaflow_watched", False):
            return  # a class (built-in, frozen): wrapping it would change it for everyone
        execute = getattr(loader, "exec_module", None)
        if execute is None:
            return
        add = self.attributes.add

        def exec_module(module: ModuleType) -> None:
            execute(module)
            add(module)

        with contextlib.suppress(AttributeError, TypeError):
            loader.exec_module = exec_module
            loader._qaflow_watched = True

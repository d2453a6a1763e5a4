"""The fsspec filesystem and the pyarrow handler, driven by the same random operations on the
memory store (the model) and on every other backend, compared step by step (see
``test_differential.py`` for the stores themselves).

On SeaweedFS, whose emptied folders stay listed (docs/design.md, "The S3 backend"), the
operations that list directories are left out; reads, writes, copies, moves, deletes and the
metadata of files still run there. The same sequences also run through the fault proxy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.fs as pafs
import pytest

import objstore_sync
from objstore.fsspec import ObjstoreFileSystem
from objstore.testing.faultproxy import ENDPOINT_KEYS, FaultProxy, serve_in_thread, split_endpoint
from tests.test_chaos import RETRIES
from tests.test_differential import DENSE_FAULTS, KEYS, NIGHTLY, SEEDS

DIRECTORIES = ["d1", "d1/sub", "d2", "d", "", "nothing", "x"]
TREES = ["d1/sub", "d2", "d1"]
TREE_TARGETS = ["x", "d2/y", "d3"]
STEPS = 300 if NIGHTLY else 120
Step = tuple[str, tuple[Any, ...]]
Target = tuple[str, dict[str, str]]


def _error(exc: Exception) -> tuple[str, str]:
    return ("error", type(exc).__name__)


def steps(
    seed: int,
    calls: list[str],
    arguments: Callable[[random.Random, str], tuple[Any, ...]],
    left_out: set[str],
) -> list[Step]:
    """``STEPS`` random calls among ``calls`` (but ``left_out``), the same for every backend."""
    rng = random.Random(seed)
    made: list[Step] = []
    while len(made) < STEPS:
        name = rng.choice(calls)
        if name not in left_out:
            made.append((name, arguments(rng, name)))
    return made


# ---- fsspec ---------------------------------------------------------------------------------

FSSPEC_LISTINGS = {"ls", "find", "find_dirs", "isdir", "glob", "walk", "expand", "du", "mv_tree",
                   "cp_tree", "rm_tree", "info_dir"}  # fmt: skip


FSSPEC_CALLS = ["pipe", "pipe", "cat", "cat_range", "info", "exists", "isfile", "rm_file", "cp",
                "mv", "open_write", "open_read", "size", "tail", "rm_list", "cat_many",
                *sorted(FSSPEC_LISTINGS)]  # fmt: skip


def fsspec_arguments(rng: random.Random, name: str) -> tuple[Any, ...]:
    """Random arguments for the fsspec call ``name``."""
    key = rng.choice(KEYS)
    if name == "pipe":
        return (key, rng.randbytes(rng.randrange(10)))
    if name == "cat_range":
        start = rng.randrange(8)
        return (key, start, start + rng.randrange(6))
    if name in ("cp", "mv"):
        return (key, rng.choice(KEYS))
    if name in ("cp_tree", "mv_tree"):
        return (rng.choice(TREES), rng.choice(TREE_TARGETS))
    if name == "glob":
        return (rng.choice(["d1/*", "d1/**", "*", "d?/a", "**/a", "d1/sub/*"]),)
    if name == "open_write":
        return (key, [rng.randbytes(3) for _ in range(rng.randrange(3))])
    if name in ("rm_list", "cat_many"):
        return (tuple(rng.choice(KEYS) for _ in range(rng.randrange(1, 3))),)
    if name in ("ls", "find", "find_dirs", "isdir", "walk", "du", "rm_tree", "info_dir", "expand"):
        return (rng.choice(DIRECTORIES + KEYS),)
    return (key,)


def fsspec_outcome(fs: ObjstoreFileSystem, name: str, args: tuple[Any, ...]) -> Any:
    """What an fsspec call returned, or the type of the exception it raised."""
    calls: dict[str, Callable[[], Any]] = {
        "pipe": lambda: fs.pipe_file(*args),
        "cat": lambda: fs.cat_file(args[0]),
        "cat_range": lambda: fs.cat_file(args[0], start=args[1], end=args[2]),
        "info": lambda: _fsspec_info(fs.info(args[0])),
        "info_dir": lambda: _fsspec_info(fs.info(args[0])),
        "exists": lambda: fs.exists(args[0]),
        "isfile": lambda: fs.isfile(args[0]),
        "isdir": lambda: fs.isdir(args[0]),
        "rm_file": lambda: fs.rm_file(args[0]),
        "rm_tree": lambda: fs.rm(args[0], recursive=True),
        "rm_list": lambda: fs.rm(list(args[0])),
        "cp": lambda: fs.cp_file(*args),
        "mv": lambda: fs.mv(*args),
        "cp_tree": lambda: fs.cp(*args, recursive=True),
        "mv_tree": lambda: fs.mv(*args, recursive=True),
        "ls": lambda: sorted(fs.ls(args[0], detail=False)),
        "find": lambda: fs.find(args[0]),
        "find_dirs": lambda: fs.find(args[0], withdirs=True),
        "glob": lambda: sorted(fs.glob(args[0])),
        "walk": lambda: [(r, sorted(d), sorted(f)) for r, d, f in fs.walk(args[0])],
        "expand": lambda: sorted(fs.expand_path(args[0], recursive=True)),
        "du": lambda: fs.du(args[0]),
        "size": lambda: fs.size(args[0]),
        "tail": lambda: fs.tail(args[0], 3),
        "cat_many": lambda: fs.cat(list(args[0])),
        "open_write": lambda: _fsspec_write(fs, *args),
        "open_read": lambda: _fsspec_read(fs, args[0]),
    }
    try:
        return calls[name]()
    except Exception as exc:  # fsspec's contract is builtin exceptions: compare their types
        return _error(exc)


def _fsspec_info(info: dict[str, Any]) -> tuple[Any, ...]:
    return info["name"], info["type"], info["size"] if info["type"] == "file" else None


def _fsspec_write(fs: ObjstoreFileSystem, path: str, chunks: list[bytes]) -> None:
    with fs.open(path, "wb") as file:
        for chunk in chunks:
            file.write(chunk)


def _fsspec_read(fs: ObjstoreFileSystem, path: str) -> bytes:
    with fs.open(path, "rb") as file:
        file.seek(1)
        data: bytes = file.read(4)
        return data


# ---- pyarrow --------------------------------------------------------------------------------

ARROW_LISTINGS = {"select", "select_tree", "select_or_none", "delete_dir", "delete_contents",
                  "move_tree", "info_dir"}  # fmt: skip


ARROW_CALLS = ["write", "write", "read", "read_at", "stream", "info", "info_many",
               "delete_file", "move", "copy", "create_dir", *sorted(ARROW_LISTINGS)]  # fmt: skip


def arrow_arguments(rng: random.Random, name: str) -> tuple[Any, ...]:
    """Random arguments for the pyarrow filesystem call ``name``."""
    key = rng.choice(KEYS)
    if name == "write":
        return (key, rng.randbytes(rng.randrange(10)))
    if name == "read_at":
        return (key, rng.randrange(8), rng.randrange(6))
    if name == "info_many":
        return (tuple(rng.choice(KEYS) for _ in range(3)),)
    if name in ("select", "select_tree", "select_or_none", "delete_dir", "delete_contents",
                "create_dir", "info_dir"):  # fmt: skip
        return (rng.choice(DIRECTORIES),)
    if name in ("move", "copy"):
        return (key, rng.choice(KEYS))
    if name == "move_tree":
        return (rng.choice(TREES), rng.choice(TREE_TARGETS))
    return (key,)


def arrow_outcome(fs: pafs.FileSystem, name: str, args: tuple[Any, ...]) -> Any:
    """What a pyarrow filesystem call returned, or the type of the exception it raised."""
    calls: dict[str, Callable[[], Any]] = {
        "write": lambda: _arrow_write(fs, *args),
        "read": lambda: _arrow_read(fs, args[0], None),
        "read_at": lambda: _arrow_read(fs, args[0], (args[1], args[2])),
        "stream": lambda: _arrow_stream(fs, args[0]),
        "info": lambda: _arrow_infos([fs.get_file_info(args[0])]),
        "info_dir": lambda: _arrow_infos([fs.get_file_info(args[0])]),
        "info_many": lambda: _arrow_infos(fs.get_file_info(list(args[0]))),
        "select": lambda: _arrow_infos(fs.get_file_info(pafs.FileSelector(args[0]))),
        "select_tree": lambda: _arrow_infos(
            fs.get_file_info(pafs.FileSelector(args[0], recursive=True))
        ),
        "select_or_none": lambda: _arrow_infos(
            fs.get_file_info(pafs.FileSelector(args[0], allow_not_found=True))
        ),
        "delete_file": lambda: fs.delete_file(args[0]),
        "delete_dir": lambda: fs.delete_dir(args[0]),
        "delete_contents": lambda: fs.delete_dir_contents(args[0], missing_dir_ok=True),
        "move": lambda: fs.move(*args),
        "move_tree": lambda: fs.move(*args),
        "copy": lambda: fs.copy_file(*args),
        "create_dir": lambda: fs.create_dir(args[0]),
    }
    try:
        return calls[name]()
    except Exception as exc:
        return _error(exc)


def _arrow_infos(infos: list[pafs.FileInfo]) -> list[tuple[Any, ...]]:
    return sorted(
        (i.path, i.type.name, i.size if i.type == pafs.FileType.File else None) for i in infos
    )


def _arrow_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def _arrow_read(fs: pafs.FileSystem, path: str, at: tuple[int, int] | None) -> bytes:
    with fs.open_input_file(path) as file:
        data: bytes = file.read() if at is None else file.read_at(at[1], at[0])
        return data


def _arrow_stream(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
        return data


# ---- the runs -------------------------------------------------------------------------------


@contextlib.contextmanager
def _filesystems(adapter: str, url: str, options: dict[str, str]) -> Iterator[tuple[Any, Any]]:
    """The model (memory) and the store at ``url`` behind the ``adapter``'s filesystem."""
    if adapter == "fsspec":
        other = ObjstoreFileSystem(url, options)
        yield ObjstoreFileSystem("memory://"), other
        other.close()
        return
    handler = objstore_sync.ArrowFileSystemHandler(url, options)
    model = pafs.PyFileSystem(objstore_sync.ArrowFileSystemHandler("memory://"))
    yield model, pafs.PyFileSystem(handler)
    handler.store.close()


def _run(model: Any, other: Any, listings: bool, seed: int) -> None:
    """The steps of ``seed`` on both filesystems, compared one by one (without the
    directory-listing steps unless ``listings``)."""
    fsspec = isinstance(model, ObjstoreFileSystem)
    if fsspec:
        made = steps(seed, FSSPEC_CALLS, fsspec_arguments, set() if listings else FSSPEC_LISTINGS)
        outcome: Callable[[Any, str, tuple[Any, ...]], Any] = fsspec_outcome
    else:
        made = steps(seed, ARROW_CALLS, arrow_arguments, set() if listings else ARROW_LISTINGS)
        outcome = arrow_outcome
    done: list[Step] = []
    for name, args in made:
        expected, got = outcome(model, name, args), outcome(other, name, args)
        assert got == expected, (
            f"step {len(done)} {name}{args!r}: memory gave {expected!r}, the backend {got!r}; "
            f"the steps before: {done[-5:]!r}"
        )
        done.append((name, args))


ADAPTER_SEEDS = SEEDS if NIGHTLY else SEEDS[:2]
RUNS = [(adapter, backend, seed) for adapter in ("fsspec", "pyarrow")
        for backend in ("local", "s3", "gcs", "azure") for seed in ADAPTER_SEEDS]  # fmt: skip


@pytest.mark.parametrize("run", RUNS, ids=[f"{a}-{b}-{s}" for a, b, s in RUNS])
def test_adapters_do_what_they_do_on_memory(
    run: tuple[str, str, int], backend_target: Callable[[str, str], Target]
) -> None:
    adapter, backend, seed = run
    url, options = backend_target(backend, f"adapters {seed}")
    with _filesystems(adapter, url, options) as (model, other):
        _run(model, other, backend != "s3", seed)


FAULT_SEEDS = SEEDS if NIGHTLY else SEEDS[:1]
FAULT_RUNS = [(adapter, backend, seed) for adapter in ("fsspec", "pyarrow")
              for backend in ("s3", "gcs", "azure") for seed in FAULT_SEEDS]  # fmt: skip


@pytest.mark.parametrize("run", FAULT_RUNS, ids=[f"{a}-{b}-{s}" for a, b, s in FAULT_RUNS])
def test_adapters_under_faults_do_what_they_do_on_memory(
    run: tuple[str, str, int], backend_target: Callable[[str, str], Target]
) -> None:
    # the same through the fault proxy at the store differential's rate (about one request
    # in four fails): the adapters add no retries of their own, so the stores' must make the
    # faults invisible to pyarrow's and fsspec's calls (none of these is conditional)
    adapter, backend, seed = run
    url, options = backend_target(backend, f"faults {seed}")
    key = ENDPOINT_KEYS[backend]
    upstream, path = split_endpoint(options[key])
    avoid = "upload_id" if backend == "gcs" else ""  # fake-gcs-server cannot resume uploads
    rules = [dataclasses.replace(rule, avoid=avoid) for rule in DENSE_FAULTS]
    with serve_in_thread(FaultProxy(upstream, rules)) as proxy:
        through = {**options, key: proxy.url + path, **RETRIES}
        with _filesystems(adapter, url, through) as (model, other):
            _run(model, other, backend != "s3", seed)
        faults = sum(1 for *_, fault in proxy.log if fault)
    assert faults >= len(proxy.log) // 6, faults  # the faults did happen

"""The objstore walkthrough: the reference README's example on memory and a local directory,
then the async API. Run it with ``make demo``."""

from __future__ import annotations

import asyncio
import pathlib
import tempfile

import objstore
from objstore_sync import AlreadyExistsError, NotFoundError, ObjectMeta, ObjectStore


def walkthrough(url: str) -> None:
    """The reference README's ObjectStore example, step by step, on one store."""
    print(f"\n== {url}")
    store = ObjectStore(url)

    store.put("data", b"some data")
    print("put('data', b'some data')")

    data = store.get("data")
    assert data == b"some data"
    print(f"get('data') -> {data!r}")

    blobs = store.list()
    print(f"list() -> {[b.location for b in blobs]}")

    meta: ObjectMeta = store.head("data")
    print(f"head('data') -> size={meta.size}, e_tag={meta.e_tag!r}, "
          f"last_modified={meta.last_modified:%Y-%m-%d %H:%M:%S %Z}")  # fmt: skip

    range_ = store.get_range("data", start=0, length=4)
    assert range_ == b"some"
    print(f"get_range('data', start=0, length=4) -> {range_!r}")

    store.copy("data", "copied")
    copied = store.get("copied")
    assert copied == data
    print(f"copy('data', 'copied'); get('copied') -> {copied!r}")

    store.put("logs/2026/11/app.log", b"line 1\n", attributes={"content_type": "text/plain"})
    listing = store.list_with_delimiter()
    print(f"list_with_delimiter() -> prefixes {listing.common_prefixes}, "
          f"objects {[m.location for m in listing.objects]}")  # fmt: skip

    try:
        store.put("data", b"other", mode="create")
    except AlreadyExistsError as exc:
        print(f"put(mode='create') on an existing key -> {type(exc).__name__}: {exc}")
    try:
        store.get("nope")
    except NotFoundError as exc:
        print(f"get('nope') -> {type(exc).__name__} (a FileNotFoundError too): {exc}")

    with store.open_writer("big.bin", part_size=5 * 1024 * 1024) as writer:
        for _ in range(3):
            writer.write(b"x" * (4 * 1024 * 1024))
    print(f"open_writer('big.bin') wrote {store.head('big.bin').size:,} bytes in parts")

    store.delete_many(store.list_iter())
    print(f"delete_many(list_iter()) -> {len(store.list())} objects left")


async def async_tour(root: pathlib.Path) -> None:
    """The same store through the async API."""
    print(f"\n== async API on {root}")
    store = objstore.from_url(str(root))
    await store.put("a/b.txt", b"hello", attributes={"content_type": "text/plain"})
    assert await store.get("a/b.txt") == b"hello"
    result = await store.get_result("a/b.txt")
    print(f"get_result -> {result.data!r}, attributes {result.attributes}")
    print(f"head -> {await store.head('a/b.txt')}")
    parts = await store.get_ranges("a/b.txt", [(0, 1), (1, 3), (3, 5)])
    print(f"get_ranges -> {parts}")
    async with store.stream("a/b.txt", chunk_size=2) as stream:
        print(f"stream chunks -> {[chunk async for chunk in stream]}")
    await store.rename("a/b.txt", "a/c.txt")
    print(f"rename -> {[m.location for m in await store.list()]}")


def main() -> None:
    walkthrough("memory://")
    with tempfile.TemporaryDirectory() as directory:
        walkthrough(f"file://{directory}/store")
        asyncio.run(async_tour(pathlib.Path(directory) / "async"))
    print("\nDone.")


if __name__ == "__main__":
    main()

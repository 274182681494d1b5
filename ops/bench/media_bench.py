"""Media ingestion benchmark: image decode and cache, video frame sampling, concurrent fetches.

    python -m ops.bench.media_bench [--images 64] [--repeats 7] [--gop 30] [--fetches 100]

Prints one markdown table. Within a group the cases run round-robin, one repetition of each per
round, `--repeats` rounds, and each case keeps its median: a machine whose load drifts then weighs
on every case alike. The ratio column compares a case with its group's baseline on time per item
(higher is better):

- images: `MediaLoader` cold (fetch from a data URL, decode, cache) and warm (cache hit) against
  plain Pillow `Image.open(...).convert("RGB")` in a loop, on 1280x720 JPEGs;
- video: sampling 8 and 32 frames from a 10 s 720p30 H.264 clip (a keyframe every `--gop` frames),
  seeking or decoding straight through, against decoding and converting every frame;
- fetch: `--fetches` concurrent downloads of distinct ~0.3 MB files from a local uvicorn + Starlette
  static server (started here, in its own process) through the guarded fetcher, against plain
  `httpx`; then as many concurrent loads of one URL (one download) and of distinct URLs (download +
  decode). Every repetition opens fresh connections (see `fetch_cases`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import PIL
from PIL import Image

from queues.media.config import MediaConfig
from queues.messages import MediaRef
from workers.media import synth
from workers.media.http import HttpFetcher
from workers.media.loader import MediaLoader
from workers.media.video import VideoOptions, decode_video

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 30, 10

Timed = Callable[[], Awaitable[float]]  # runs one repetition, returns the seconds that count


@dataclass
class Case:
    name: str
    run: Timed
    items: int
    unit: str


@dataclass
class Row:
    group: str
    case: str
    seconds: float  # median of the repetitions
    items: int
    unit: str


async def interleaved(group: str, cases: list[Case], repeats: int) -> list[Row]:
    """Run the cases round-robin; the first case is the group's baseline."""
    times: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            times[case.name].append(await case.run())
    return [Row(group, c.name, statistics.median(times[c.name]), c.items, c.unit) for c in cases]


def timed(work: Callable[[], object]) -> Timed:
    async def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def photo_like_jpeg(seed: int) -> bytes:
    """A 1280x720 JPEG with gradients and noise, so entropy decoding does real work (~0.3 MB)."""
    rng = np.random.default_rng(seed)
    picture = synth.pattern(WIDTH, HEIGHT, seed).astype(np.int16)
    picture += rng.normal(0, 12, picture.shape).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def image_refs(urls: list[str]) -> list[MediaRef]:
    return [MediaRef(modality="image", url=url) for url in urls]


async def time_loads(config: MediaConfig, refs: list[MediaRef], warm_up: MediaRef | None = None) -> float:
    """Load `refs` concurrently with a fresh loader (after `warm_up`, if given, builds its HTTP client)."""
    async with MediaLoader(config) as loader:
        if warm_up is not None:
            await loader.load(warm_up)
        start = time.perf_counter()
        await asyncio.gather(*(loader.load(ref) for ref in refs))
        return time.perf_counter() - start


async def image_cases(count: int) -> tuple[list[Case], MediaLoader]:
    jpegs = [photo_like_jpeg(seed) for seed in range(count)]
    refs = image_refs([f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" for jpeg in jpegs])
    config = MediaConfig()

    def pil_loop() -> None:
        for jpeg in jpegs:
            Image.open(io.BytesIO(jpeg)).convert("RGB")

    def pil_keep() -> None:
        kept = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg in jpegs]
        del kept

    async def cold_one_at_a_time() -> float:
        async with MediaLoader(config) as loader:
            start = time.perf_counter()
            for ref in refs:
                await loader.load(ref)
            return time.perf_counter() - start

    warm = MediaLoader(config)
    for ref in refs:
        await warm.load(ref)

    async def warm_one_at_a_time() -> float:
        start = time.perf_counter()
        for ref in refs:
            await warm.load(ref)
        return time.perf_counter() - start

    threads = config.thread_count
    return [
        Case("Pillow open + convert loop", timed(pil_loop), count, "img"),
        Case("Pillow loop, keeping every image (as a cache does)", timed(pil_keep), count, "img"),
        Case("MediaLoader cold, one at a time", cold_one_at_a_time, count, "img"),
        Case(
            f"MediaLoader cold, all at once ({threads} decode threads)",
            lambda: time_loads(config, refs),
            count,
            "img",
        ),
        Case("MediaLoader warm (cache hit), one at a time", warm_one_at_a_time, count, "img"),
    ], warm


def decode_every_frame(clip: bytes, keep: int) -> np.ndarray:
    """The naive way: decode and convert every frame, then pick `keep` of them."""
    with av.open(io.BytesIO(clip), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    picks = np.linspace(0, len(frames) - 1, keep).round().astype(int)
    return np.stack([frames[i] for i in picks])


def video_cases(gop: int) -> list[Case]:
    clip = synth.video_bytes(
        "mp4", width=WIDTH, height=HEIGHT, fps=FPS, frames=FPS * SECONDS, gop=gop, crf=23
    )
    cases = [
        Case(
            f"decode + convert every frame ({FPS * SECONDS})",
            timed(lambda: decode_every_frame(clip, 8)),
            1,
            "clip",
        )
    ]
    for count in (8, 32):
        for seek in (True, False):
            options = VideoOptions(num_frames=count, seek=seek, max_frame_pixels=WIDTH * HEIGHT)
            how = "seeking to keyframes" if seek else "decoding straight through"
            work = timed(functools.partial(decode_video, clip, "h", options))
            cases.append(Case(f"sample {count} frames, {how}", work, 1, "clip"))
    return cases


_SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

app = Starlette(routes=[Mount("/", StaticFiles(directory=sys.argv[2]))])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", backlog=2048)
"""


def start_http_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving `directory` in its own process (http.server's backlog of 5 stalls 100 clients)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port), str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the local media server did not start")


def fetch_cases(base: str, count: int) -> list[Case]:
    """Fresh connections every repetition: re-used keep-alive connections to this server can stall
    ~40 ms per response (Nagle / delayed ACK), which would measure the server rather than us."""
    urls = [f"{base}/{i}.jpg" for i in range(count)]
    config = MediaConfig(allow_hosts=("127.0.0.1",), http_max_connections=count)
    warm_up = MediaRef(modality="image", url=f"{base}/warmup.jpg")

    async def plain() -> float:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=count), trust_env=False) as client:
            start = time.perf_counter()
            answers = await asyncio.gather(*(client.get(url) for url in urls))
            elapsed = time.perf_counter() - start
        assert all(answer.status_code == 200 for answer in answers)
        return elapsed

    async def guarded() -> float:
        fetcher = HttpFetcher(config)
        fetcher.client()  # built outside the timing, like the plain client
        start = time.perf_counter()
        await asyncio.gather(*(fetcher.fetch(url, "image") for url in urls))
        elapsed = time.perf_counter() - start
        await fetcher.aclose()
        return elapsed

    return [
        Case(f"plain httpx, {count} concurrent GETs", plain, count, "fetch"),
        Case(f"guarded fetcher, {count} concurrent downloads", guarded, count, "fetch"),
        Case(
            f"MediaLoader, {count} concurrent loads of one URL (1 download)",
            lambda: time_loads(config, image_refs(urls[:1] * count), warm_up),
            count,
            "load",
        ),
        Case(
            f"MediaLoader, {count} concurrent loads of distinct URLs (+ decode)",
            lambda: time_loads(config, image_refs(urls), warm_up),
            count,
            "load",
        ),
    ]


def table(rows: list[Row]) -> str:
    lines = ["| group | case | median time | throughput | vs baseline |", "|---|---|---:|---:|---:|"]
    baselines: dict[str, Row] = {}
    for row in rows:
        base = baselines.setdefault(row.group, row)
        ratio = (base.seconds / base.items) / (row.seconds / row.items)
        mark = " (baseline)" if row is base else ""
        lines.append(
            f"| {row.group} | {row.case}{mark} | {row.seconds * 1000:.1f} ms | "
            f"{row.items / row.seconds:,.1f} {row.unit}/s | {ratio:.2f}x |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    cases, warm = await image_cases(args.images)
    rows = await interleaved("images", cases, args.repeats)
    assert warm.stats().decodes == args.images, "the warm runs must all be cache hits"
    await warm.aclose()
    rows += await interleaved("video", video_cases(args.gop), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for i in range(args.fetches + 1):
            (directory / (f"{i}.jpg" if i < args.fetches else "warmup.jpg")).write_bytes(photo_like_jpeg(i))
        process, base = start_http_server(directory)
        try:
            rows += await interleaved("fetch", fetch_cases(base, args.fetches), args.repeats)
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(table(rows))
    print(
        f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, PyAV {av.__version__}, "
        f"Pillow {PIL.__version__}; median of {args.repeats} interleaved repetitions; "
        f"video: {WIDTH}x{HEIGHT} {FPS} fps {SECONDS} s H.264, keyframe every {args.gop} frames; "
        f"total {time.perf_counter() - started:.0f} s"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64, help="distinct 1280x720 JPEGs (default 64)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions per case (default 7)")
    parser.add_argument("--gop", type=int, default=30, help="keyframe interval of the test clip (default 30)")
    parser.add_argument("--fetches", type=int, default=100, help="concurrent downloads (default 100)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

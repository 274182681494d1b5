"""The peer: NVIDIA Dynamo 1.6.1's OpenAI frontend with its mocker engine, on CPU, without etcd or NATS.

Installed on first use into its own virtualenv, `.bench/dynamo/` (never into the project's
dependencies): `ai-dynamo-runtime`, then `ai-dynamo` without its requirements (its `aisimulate`
requirement does not install here and is not needed) plus the pure-Python ones it imports.
Discovery goes through files in a private directory (`DYN_FILE_KV`), requests over TCP, all on
loopback. The mocker's own token ids are random and decode to nothing, so it is given a replay trace
of real token ids and every request names that trace entry (`nvext.annotations`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

from ops.bench.serve.procs import process_group
from ops.bench.serve.target import Target, wait_for_model
from ops.redis import free_port

VERSION = "1.6.1"
INSTALL_STEPS = [
    [f"ai-dynamo-runtime=={VERSION}"],
    ["--no-deps", f"ai-dynamo=={VERSION}"],
    # what `ai-dynamo` imports, less `aisimulate`
    ["aiohttp", "msgspec", "prometheus-client", "pyzmq", "redis", "transformers", "tokenizers", "zstandard"],
    ["kubernetes<33"],
]
REPLAY_ID = "triptych-bench"
SPEEDUP = 1000
LOOPBACK = ("DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST", "DYN_EVENT_PLANE_HOST", "DYN_SYSTEM_HOST")
WORD = re.compile(r"^ ?[A-Za-z]{2,}$")


def python(bench_dir: Path) -> Path:
    """The virtualenv's interpreter, creating the virtualenv and installing Dynamo when needed."""
    env_dir = bench_dir / "dynamo"
    interpreter = env_dir / "bin" / "python"
    stamp = env_dir / ".installed"
    wanted = json.dumps(INSTALL_STEPS)
    if interpreter.exists() and stamp.exists() and stamp.read_text() == wanted:
        return interpreter
    print(f"installing NVIDIA Dynamo {VERSION} into {env_dir} ...", file=sys.stderr, flush=True)
    venv.create(env_dir, with_pip=True, clear=True)
    for step in INSTALL_STEPS:
        subprocess.run([str(interpreter), "-m", "pip", "install", "-q", *step], check=True)
    stamp.write_text(wanted)
    return interpreter


def word_token_ids(model_dir: Path, count: int) -> list[int]:
    """`count` token ids of the model's tokenizer that decode to plain words (cycled if too few)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    words = [i for i in range(tokenizer.get_vocab_size()) if WORD.match(tokenizer.decode([i]))]
    if not words:
        raise RuntimeError(f"the tokenizer in {model_dir} has no plain-word tokens")
    step = max(1, len(words) // count)
    return [words[(i * step) % len(words)] for i in range(count)]


@contextlib.contextmanager
def dynamo(model_dir: Path, tokens: int, bench_dir: Path, log_dir: Path) -> Iterator[Target]:
    interpreter = str(python(bench_dir))
    with tempfile.TemporaryDirectory(prefix="triptych-dynamo-") as state:
        trace = Path(state) / "replay.jsonl"
        ids = word_token_ids(model_dir, tokens)
        row = {"request_id": REPLAY_ID, "timestamp": 0, "input_length": 50, "output_length": tokens}
        trace.write_text(json.dumps({**row, "output_token_ids": ids}) + "\n")
        env = {
            **os.environ,
            "DYN_FILE_KV": str(Path(state) / "kv"),
            "DYN_LOG": "warn",  # as our processes log at WARNING
            **dict.fromkeys(LOOPBACK, "127.0.0.1"),
        }
        port = free_port()
        planes = ["--discovery-backend", "file", "--request-plane", "tcp"]
        frontend = [interpreter, "-m", "dynamo.frontend", *planes, "--http-host", "127.0.0.1"]
        frontend += ["--http-port", str(port)]
        mocker = [interpreter, "-m", "dynamo.mocker", "--model-path", str(model_dir), *planes]
        mocker += ["--model-name", model_dir.name, "--speedup-ratio", str(SPEEDUP)]
        mocker += ["--response-replay-trace-path", str(trace)]
        with (
            process_group(frontend, env, log_dir / "dynamo-frontend.log") as front,
            process_group(mocker, env, log_dir / "dynamo-mocker.log") as mock,
        ):
            url = f"http://127.0.0.1:{port}"
            wait_for_model(url, model_dir.name, lambda: front.poll() is None and mock.poll() is None, 180)
            yield Target(
                name="dynamo mocker",
                host="127.0.0.1",
                port=port,
                model=model_dir.name,
                config=(
                    f"NVIDIA Dynamo {VERSION}: dynamo.frontend + dynamo.mocker --speedup-ratio {SPEEDUP} "
                    "(default polynomial timing), file discovery, TCP request plane, replay trace of "
                    f"{tokens} word tokens, DYN_LOG=warn"
                ),
                pids=[front.pid, mock.pid],
                extra={"nvext": {"annotations": [f"output_replay_id:{REPLAY_ID}"]}},
            )

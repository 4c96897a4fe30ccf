"""A bounded load test of the app's /edit over loopback: latency and server memory.

    python scripts/load_test.py                 # starts app.py itself; 16 clients x 50 calls
    python scripts/load_test.py --url http://127.0.0.1:7860/ --pid 1234 --clients 4 --calls 5

N clients (threads) each make M /edit calls the way a browser or ``gradio_client`` does,
in one queue session per client: upload the photo (``POST /gradio_api/upload``), join
the queue, read the answer from the event stream. Photos are random variants (scale,
mirror, brightness) of the example faces, with random strengths for a few random
attributes; a few calls (``--bad``) send a bad file instead: a text file named .png, a
photo without a face, or a path outside the upload folder, each of which must get its
own error. Prints p50/p95 latency and the server's resident memory (``/proc/<pid>/status``)
after warm-up and at the end, and exits 1 if any call failed unexpectedly or memory grew
more than ``--max-growth`` after warm-up. Bounded: N x M calls, each with a timeout, and
``--max-seconds`` for the whole run; it only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "assets" / "faces"
CALL_TIMEOUT_S = 300
ATTRIBUTES = ["smile", "age_years", "blond_hair", "black_hair", "glasses", "beard", "male",
              "makeup", "bangs", "gray_hair"]
# what each kind of bad file must be answered with (a substring of the error)
BAD_ANSWERS = {"text": "not an image", "no_face": "no face", "outside": "Invalid file."}


@dataclass
class Call:
    kind: str  # "photo" or a key of BAD_ANSWERS
    seconds: float
    ok: bool  # the expected answer: an edited photo, or the bad file's own error
    detail: str = ""


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def photo_variants(n: int, rng: random.Random) -> list[bytes]:
    """n PNGs: the example faces rescaled, mirrored and brightened at random, so that the
    editor's cache sees many different photos."""
    sources = sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    out = []
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as im:
            image = im.convert("RGB")
        scale = rng.uniform(0.6, 1.0)
        image = image.resize((max(64, int(image.width * scale)),
                              max(64, int(image.height * scale))), Image.LANCZOS)
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def bad_files(folder: Path) -> dict[str, bytes | Path]:
    """The bad inputs: uploaded bytes, or (outside) a path that is never uploaded."""
    y, x = np.mgrid[0:240, 0:320]
    wall = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))
    buffer = io.BytesIO()
    wall.save(buffer, "PNG")
    outside = folder / "outside.png"
    outside.write_bytes((FACES / "astronaut.png").read_bytes())
    return {"text": b"these are not the pixels you are looking for\n" * 20,
            "no_face": buffer.getvalue(), "outside": outside}


class EditClient:
    """One client: its own HTTP connection and queue session, as ``gradio_client`` or a
    browser tab keeps one (the server holds state per session, up to a fixed number)."""

    def __init__(self, url: str, fn_index: int, n_inputs: int = 2) -> None:
        self.http = httpx.Client(base_url=url, timeout=CALL_TIMEOUT_S)
        self.fn_index = fn_index
        self.n_inputs = n_inputs  # /edit's optional inputs after the two (faces, ...) get None
        self.session = uuid.uuid4().hex

    def upload(self, name: str, data: bytes) -> dict:
        response = self.http.post("gradio_api/upload", files=[("files", (name, data))])
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": name,
                "meta": {"_type": "gradio.FileData"}}

    def edit(self, photo: dict, strengths: dict[str, float]) -> dict:
        """The process_completed message of one /edit call through the queue."""
        joined = self.http.post("gradio_api/queue/join", json={
            "data": [photo, strengths] + [None] * (self.n_inputs - 2),
            "fn_index": self.fn_index,
            "session_hash": self.session, "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" \
                            and message.get("event_id") == event_id:
                        return message
        raise RuntimeError("the event stream closed without an answer")

    def close(self) -> None:
        self.http.close()


def one_call(client: EditClient, rng: random.Random, photos: list[bytes],
             bad: dict[str, bytes | Path], bad_rate: float) -> Call:
    kind = rng.choice(sorted(bad)) if rng.random() < bad_rate else "photo"
    strengths = {a: round(rng.uniform(-1.5, 1.5), 2)
                 for a in rng.sample(ATTRIBUTES, rng.randint(1, 3))}
    start = time.perf_counter()
    try:
        if kind == "photo":
            payload = client.upload("face.png", rng.choice(photos))
        elif kind == "outside":
            payload = {"path": str(bad[kind])}
        else:
            payload = client.upload(f"{kind}.png", bad[kind])
        message = client.edit(payload, strengths)
    except (httpx.HTTPError, RuntimeError, ValueError) as err:
        return Call(kind, time.perf_counter() - start, False, f"{type(err).__name__}: {err}")
    seconds = time.perf_counter() - start
    output = message.get("output") or {}
    if kind == "photo":
        data = output.get("data") or [None]
        ok = bool(message.get("success")) and isinstance(data[0], dict) and data[0].get("path")
        return Call(kind, seconds, bool(ok), "" if ok else json.dumps(message)[:300])
    error = output.get("error") or ""
    ok = not message.get("success") and BAD_ANSWERS[kind].lower() in error.lower()
    return Call(kind, seconds, ok, "" if ok else json.dumps(message)[:300])


def run(url: str, pid: int, clients: int, calls: int, warmup: int, bad_rate: float,
        seed: int, max_seconds: float) -> dict:
    """The load test proper; returns its figures (see ``main`` for their meaning)."""
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"load_test: only loopback is allowed, not {host}")
    url = url if url.endswith("/") else url + "/"
    config = httpx.get(url + "config", timeout=60).json()
    edit = next(d for d in config["dependencies"] if d.get("api_name") == "edit")
    fn_index, n_inputs = edit["id"], len(edit["inputs"])
    master = random.Random(seed)
    photos = photo_variants(12, master)
    folder = Path(tempfile.mkdtemp(prefix="glow-load-"))
    bad = bad_files(folder)
    seeds = [master.randrange(2**31) for _ in range(clients)]
    deadline = time.monotonic() + max_seconds
    warm = threading.Barrier(clients + 1)
    done: list[list[Call]] = [[] for _ in range(clients)]

    def client_loop(k: int) -> None:
        rng, client = random.Random(seeds[k]), EditClient(url, fn_index, n_inputs)
        try:
            for i in range(calls):
                if i == warmup:  # every client done warming up: memory is read now
                    warm.wait(timeout=max_seconds)
                if time.monotonic() > deadline:
                    done[k].append(Call("photo", 0.0, False, "over --max-seconds"))
                    continue
                done[k].append(one_call(client, rng, photos, bad, bad_rate))
            if calls <= warmup:
                warm.wait(timeout=max_seconds)
        except BaseException:
            warm.abort()  # never leave the others (and the memory reading) waiting
            raise
        finally:
            client.close()

    samples: list[tuple[int, float]] = []  # (calls answered, MB), every second
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.wait(1.0):
            samples.append((sum(len(d) for d in done), rss_mb(pid)))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    start_mb = rss_mb(pid)
    started = time.perf_counter()
    sampler.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(client_loop, k) for k in range(clients)]
            try:
                warm.wait(timeout=max_seconds)
            except threading.BrokenBarrierError:
                pass  # a client failed: its exception is raised below
            warm_mb = rss_mb(pid)
            warm_calls = sum(len(d) for d in done)
            for f in futures:
                f.result()
    finally:
        stop.set()
        shutil.rmtree(folder, ignore_errors=True)
    end_mb = rss_mb(pid)
    # the memory curve: the last sample at or before each tenth of the calls
    total = clients * calls
    curve = [(n, next((mb for c, mb in reversed(samples) if c <= n), start_mb))
             for n in range(total // 10, total + 1, max(1, total // 10))]
    wall = time.perf_counter() - started
    results = [c for d in done for c in d]
    measured = [c for d in done for c in d[warmup:]]
    latencies = sorted(c.seconds for c in measured if c.kind == "photo" and c.ok)
    failures = [c for c in results if not c.ok]
    return {
        "clients": clients, "calls": calls, "total": len(results), "warmup_calls": warm_calls,
        "kinds": dict(Counter(c.kind for c in results)),
        "unexpected": len(failures), "failures": [f"{c.kind}: {c.detail}" for c in failures[:5]],
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "start_mb": start_mb, "warm_mb": warm_mb, "end_mb": end_mb,
        "growth": end_mb / warm_mb - 1, "wall_s": wall, "curve": curve,
        "throughput": len(results) / wall,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(folder: Path) -> tuple[subprocess.Popen, str]:
    """python app.py on a free loopback port, with its own GRADIO_TEMP_DIR."""
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(folder / "gradio"), "PYTHONUNBUFFERED": "1"}
    log = (folder / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=folder, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"load_test: app.py exited with {proc.returncode}, see {log.name}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("load_test: app.py did not start within 180 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app on 127.0.0.1 (default: start one)")
    parser.add_argument("--pid", type=int, help="its server process, for memory (with --url)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=50, help="/edit calls per client")
    parser.add_argument("--warmup", type=int, default=5,
                        help="calls per client before memory is first read")
    parser.add_argument("--bad", type=float, default=0.05, help="share of calls with bad files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--max-growth", type=float, default=0.10,
                        help="allowed memory growth after warm-up (0.10 = 10 %%)")
    args = parser.parse_args(argv)
    if (args.url is None) != (args.pid is None):
        parser.error("--url and --pid go together")

    proc = None
    if args.url is None:
        proc, url = start_app(Path(tempfile.mkdtemp(prefix="glow-load-app-")))
        pid = proc.pid
    else:
        url, pid = args.url, args.pid
    try:
        r = run(url, pid, args.clients, args.calls, args.warmup, args.bad, args.seed,
                args.max_seconds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    print(f"{r['clients']} clients x {r['calls']} /edit calls = {r['total']} calls "
          f"({', '.join(f'{k} {v}' for k, v in sorted(r['kinds'].items()))}) "
          f"in {r['wall_s']:.0f} s, {r['throughput']:.2f} calls/s")
    print(f"unexpected errors: {r['unexpected']}")
    for line in r["failures"]:
        print(f"  {line}")
    print(f"latency after warm-up (upload + queue + edit): p50 {r['p50_s'] * 1000:.0f} ms, "
          f"p95 {r['p95_s'] * 1000:.0f} ms")
    print(f"server memory: start {r['start_mb']:.0f} MB, after warm-up ({r['warmup_calls']} "
          f"calls) {r['warm_mb']:.0f} MB, end {r['end_mb']:.0f} MB "
          f"({r['growth'] * 100:+.1f} % after warm-up)")
    print("server memory (MB by calls answered): "
          + ", ".join(f"{n}: {mb:.0f}" for n, mb in r["curve"]))
    ok = r["unexpected"] == 0 and r["growth"] <= args.max_growth
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

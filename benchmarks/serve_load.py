"""Load test of the rerank service on loopback: `xrerank serve`, then Ray Serve with 1 and 2 replicas.

python benchmarks/serve_load.py [--clients 8] [--duration 60] [--docs 20] [--ray-duration 30] [--no-ray]

Clients are threads, each with its own http-backend Reranker (HttpScorer: retries on
connection errors and 429/500/502/503), sending one request after another: a TREC DL 2019
query with the first --docs BM25 passages (queries cycle). Reported: completed requests per
second, latency p50 / p95 (one rerank call, retries included), failed requests (an error left
after the retries), retries. Ray part: the same load on 1 replica, then on 2 (throughput ratio),
then on 2 with one replica killed halfway (ray.kill), counting requests lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT, dl19_bm25_top100, machine, write_section

SECTION_START = "<!-- serve_load.py:start -->"
SECTION_END = "<!-- serve_load.py:end -->"
MODEL = "xrerank/minilm-scifact"


class RetryCounter(logging.Handler):
    """Counts the http backend's retry warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            with self._lock:
                self.count += 1


RETRIES = RetryCounter()
logging.getLogger("xrerank_core._backends._http").addHandler(RETRIES)
logging.getLogger("xrerank_core._backends._http").propagate = False


@dataclass
class Run:
    label: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    note: str = ""

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else float("nan")

    def row(self) -> str:
        return (
            f"| {self.label} | {len(self.latencies)} | {self.rps:.2f} | {self.pct(0.5) * 1000:.0f} | "
            f"{self.pct(0.95) * 1000:.0f} | {len(self.failures)} | {self.retries} |"
        )


def load(url: str, label: str, clients: int, seconds: float, work: list[tuple[str, list[str]]], during=None) -> Run:
    """Run `clients` closed-loop clients for `seconds`; `during(run)` runs in a thread at the start."""
    from xrerank_core import HttpScorer, Reranker

    run = Run(label, seconds)
    lock = threading.Lock()
    start = time.perf_counter()
    end = start + seconds
    before = RETRIES.count

    def client(k: int) -> None:
        rr = Reranker(HttpScorer(url, retries=10, backoff=0.2, timeout=300))
        i = k
        while time.perf_counter() < end:
            query, docs = work[i % len(work)]
            i += clients
            t0 = time.perf_counter()
            try:
                ranked = rr.rerank(query, docs)
                if len(ranked) != len(docs):
                    raise RuntimeError(f"{len(ranked)} results for {len(docs)} documents")
            except Exception as exc:  # a lost request: reported
                with lock:
                    run.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                run.latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    if during is not None:
        threading.Thread(target=during, args=(run,), daemon=True).start()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - start  # the last requests end after the deadline
    run.retries = RETRIES.count - before
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become healthy")


def warm(url: str, work: list[tuple[str, list[str]]]) -> None:
    from xrerank_core import HttpScorer, Reranker

    rr = Reranker(HttpScorer(url, timeout=300))
    for query, docs in work[:3]:
        rr.rerank(query, docs)


def loopback(args: argparse.Namespace, work: list[tuple[str, list[str]]], threads: int | None) -> tuple[Run, str]:
    port = free_port()
    options = [
        "--timeout", "300", "--max-concurrency", str(args.max_concurrency),
        "--max-batch-requests", str(args.max_batch_requests),
        *(["--threads", str(threads)] if threads else []),
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "xrerank_core.cli", "serve", "--model", MODEL, "--port", str(port), *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        warm(url, work)
        label = f"`xrerank serve`{f' --threads {threads}' if threads else ''}, {args.clients} clients"
        run = load(url, label, args.clients, args.duration, work)
    finally:
        proc.terminate()
        proc.wait(30)
    return run, f"xrerank serve --model {MODEL} {' '.join(options)}"


def ray_runs(args: argparse.Namespace, work: list[tuple[str, list[str]]]) -> list[Run]:
    import ray
    from ray import serve

    from xrerank_core.serve import ServerSettings, ray_deployment

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    def deploy(replicas: int) -> None:
        app = ray_deployment(
            MODEL,
            settings=ServerSettings(model_name=MODEL, timeout_s=300),
            num_replicas=replicas,
            ray_actor_options={"num_cpus": 1, "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}}},
        )
        serve.run(app, name="xrerank", route_prefix="/")
        while len(replica_names()) != replicas:
            time.sleep(0.5)
        wait_healthy(url)
        warm(url, work)

    def replica_names() -> list[str]:
        return sorted(
            a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("SERVE_REPLICA")
        )

    runs = []
    try:
        deploy(1)
        runs.append(load(url, f"Ray Serve, 1 replica, {args.clients} clients", args.clients, args.ray_duration, work))
        deploy(2)
        runs.append(load(url, f"Ray Serve, 2 replicas, {args.clients} clients", args.clients, args.ray_duration, work))

        def kill_one(run: Run) -> None:
            time.sleep(args.ray_duration / 2)
            victim = replica_names()[0]
            killed = time.monotonic()
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            while victim in replica_names() or len(replica_names()) < 2:
                time.sleep(0.2)
            run.note = (
                f"killed `{victim.split('#')[-1]}` at {args.ray_duration / 2:.0f} s; Serve had a replacement "
                f"replica registered {time.monotonic() - killed:.1f} s later"
            )

        label = f"Ray Serve, 2 replicas, one killed halfway, {args.clients} clients"
        runs.append(load(url, label, args.clients, args.ray_duration, work, during=kill_one))
    finally:
        serve.shutdown()
        ray.shutdown()
    return runs


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load on `xrerank serve`")
    parser.add_argument("--ray-duration", type=float, default=30.0, help="seconds of load per Ray Serve run")
    parser.add_argument("--docs", type=int, default=20, help="documents per request")
    parser.add_argument("--max-concurrency", type=int, default=1, help="xrerank serve --max-concurrency")
    parser.add_argument("--max-batch-requests", type=int, default=16, help="xrerank serve --max-batch-requests")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    work = [(q, docs[: args.docs]) for q, docs in dl19_bm25_top100()]
    up_start = uptime()
    wall = time.perf_counter()
    runs = []
    run, serve_cmd = loopback(args, work, None)
    runs.append(run)
    run, _ = loopback(args, work, 1)  # the same with one torch thread, as each Ray replica has
    runs.append(run)
    up_mid = uptime()
    if not args.no_ray:
        runs += ray_runs(args, work)
    up_end = uptime()

    import torch

    argv = " ".join(sys.argv[1:])
    out = [
        "## Serving: load test on loopback",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {machine()}; torch threads {torch.get_num_threads()} in `xrerank serve` (its default) "
        "or 1 (`--threads 1`), 1 per Ray replica",
        f"- command (from the repo root): `.venv/bin/python benchmarks/serve_load.py{(' ' + argv) if argv else ''}`",
        f"- server: `{serve_cmd} [--threads 1]` (FastAPI + uvicorn, one process; requests that wait "
        "together are scored as one job), "
        "and `ray_deployment(...)` on a local Ray "
        "instance (`num_cpus=1` and `OMP_NUM_THREADS=1` per replica, `@serve.batch` up to 16 requests / 5 ms)",
        f"- load: {args.clients} closed-loop clients (threads), each an http-backend `Reranker` "
        "(`HttpScorer(url, retries=10, backoff=0.2)`); a request is one TREC DL 2019 query with its first "
        f"{args.docs} BM25 passages (queries cycle), `POST /v1/rerank`. {args.duration:.0f} s on `xrerank serve`, "
        f"{args.ray_duration:.0f} s per Ray run; 3 warm-up requests before each run, not counted",
        f"- {args.docs} documents per request rather than 100: on 2 shared CPU cores a 100-passage request takes "
        "seconds, and 8 clients would measure little but queueing",
        "- latency: one `rerank` call as the client sees it (queueing and retries included); failed = an error "
        "left after the client's retries",
        "",
        "| run | requests | requests/s | p50 ms | p95 ms | failed | retries |",
        "|---|---|---|---|---|---|---|",
        *[r.row() for r in runs],
        "",
    ]
    if len(runs) >= 4:
        one, two, kill = runs[2], runs[3], runs[4] if len(runs) > 4 else None
        out.append(
            f"Ray Serve, 2 replicas vs 1: {two.rps / one.rps:.2f}x the requests/s "
            f"({two.rps:.2f} / {one.rps:.2f}), same load, same run. This machine has {os.cpu_count()} cores, shared "
            "with other jobs (load below), and the clients and Ray's proxy run on it too: do not expect 2x here; "
            "on a cluster each replica gets its own cores or GPU."
        )
        out.append("")
        if kill is not None:
            lost = len(kill.failures)
            out.append(
                f"Replica killed under load: {kill.note}; {lost} client request(s) lost "
                f"({kill.retries} retries by the clients: the requests in flight on the killed replica are "
                "answered 500 by Ray's proxy, and the http backend sends them again)."
            )
            out.append("")
    for r in runs:
        if r.failures:
            out.append(f"{r.label}: first failures: {r.failures[:3]}")
    out += [
        "",
        f"`uptime` at the start: `{up_start}`; after `xrerank serve`: `{up_mid}`; at the end: `{up_end}` "
        f"(a training job and other engineers shared the {os.cpu_count()} cores). "
        f"Whole run: {(time.perf_counter() - wall) / 60:.1f} min.",
    ]
    text = "\n".join(out)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

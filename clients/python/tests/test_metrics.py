"""tokenfeedd's metrics and per-job state against a real daemon: ``GET /metrics`` (``--metrics-listen``)
parsed by prometheus_client's text parser while a client streams, its values checked against the
tokens the client counted; ``tokenfeed stats --prometheus`` and ``fetch_stats(prometheus=True)`` give
the endpoint's families; the endpoint's answers to bad requests; ``stats.json`` rewritten while a
session runs; and two jobs on one daemon keeping separate cursors that each resume exactly.
Skipped when the binaries are not built."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import END_TOKEN, SEQUENCE_LENGTH, Daemon
from reference import copy_rows

import tokenfeed
from tokenfeed import protocol as P

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is installed by scripts/setup.sh")

L = SEQUENCE_LENGTH
TOTAL_SEQUENCES = END_TOKEN // L  # 3125
TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return answer.read().decode()


def families(text: str) -> dict:
    """Family name → {(sample name, sorted labels): value}, through prometheus_client's parser (which
    raises on anything that is not valid exposition text)."""
    out = {}
    for family in parser.text_string_to_metric_families(text):
        assert family.name not in out, f"family {family.name} appears twice"
        out[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return out


def value(fams: dict, sample: str, **labels) -> float:
    for family in fams.values():
        key = (sample, tuple(sorted(labels.items())))
        if key in family:
            return family[key]
    raise KeyError(f"{sample}{labels} not in the metrics")


def samples(fams: dict, sample: str, **labels) -> dict:
    """Every sample named ``sample`` whose labels include ``labels``: {labels: value}."""
    out = {}
    for family in fams.values():
        for (name, ls), v in family.items():
            if name == sample and all(dict(ls).get(k) == w for k, w in labels.items()):
                out[ls] = v
    return out


@pytest.fixture
def metrics_daemon(tmp_path, tokenfeedd_bin, data_root):
    port = free_port()
    state = tmp_path / "state"
    d = Daemon(tokenfeedd_bin, data_root / "curriculum.yaml", data_root, tmp_path,
               ["--metrics-listen", f"127.0.0.1:{port}", "--state-dir", str(state)])
    d.port, d.state = port, state
    yield d
    d.stop()


def test_metrics_while_a_client_streams_agree_with_what_it_counted(metrics_daemon):
    d = metrics_daemon
    B = 5  # 3125 sequences = 625 steps of 5 rows for one rank
    job = "metrics-job"
    counted = collections.Counter()  # (dataset name, stage name) → tokens the client received
    tokens = batches = 0
    c = tokenfeed.Client(d.socket, 0, 1, B, credits=2, job_id=job, timeout=TIMEOUT)
    datasets = [x.name for x in c.welcome.datasets]
    stages = [x.name for x in c.welcome.stages]
    scraped_mid_stream = False
    last_served = 0
    while (b := c.next()) is not None:
        batches += 1
        for row in copy_rows(b):
            counted[(datasets[row.dataset], stages[row.stage])] += L
            tokens += L
        if batches in (40, 300):
            # Mid-stream: the daemon has sent what the client read plus at most its credits.
            fams = families(scrape(d.port))
            served = value(fams, "tokenfeed_served_tokens_total", job=job, rank="0")
            assert tokens <= served <= tokens + 2 * B * L
            assert value(fams, "tokenfeed_served_batches_total", job=job, rank="0") * B * L == served
            assert value(fams, "tokenfeed_stream_position_tokens", job=job) == served
            assert served > last_served
            last_served = served
            assert value(fams, "tokenfeed_sessions") == 1
            assert value(fams, "tokenfeed_ring_slots", job=job, rank="0") >= 2
            stage_index = value(fams, "tokenfeed_stage_index", job=job)
            assert stage_index in (0, 1)
            progress = samples(fams, "tokenfeed_stage_progress_ratio", job=job)
            assert all(0 <= v <= 1 for v in progress.values()) and len(progress) == len(stages)
            assert value(fams, "tokenfeed_preload_budget_bytes") > 0
            assert value(fams, "tokenfeed_frames_decompressed_total") > 0
            scraped_mid_stream = True
    c.close()
    assert scraped_mid_stream and tokens == END_TOKEN // L * L == TOTAL_SEQUENCES * L

    # The stream ended: every count is exact.
    fams = families(scrape(d.port))
    assert value(fams, "tokenfeed_served_tokens_total", job=job, rank="0") == tokens
    assert value(fams, "tokenfeed_served_batches_total", job=job, rank="0") == batches == TOTAL_SEQUENCES // B
    assert value(fams, "tokenfeed_stream_position_sequences", job=job) == TOTAL_SEQUENCES
    assert value(fams, "tokenfeed_stream_position_tokens", job=job) == tokens
    assert value(fams, "tokenfeed_stage_index", job=job) == len(stages) - 1
    for stage in stages:
        assert value(fams, "tokenfeed_stage_progress_ratio", job=job, stage=stage) == 1
    per_dataset = samples(fams, "tokenfeed_stream_dataset_tokens", job=job)
    assert sum(per_dataset.values()) == tokens
    for (dataset, stage), n in counted.items():
        assert value(fams, "tokenfeed_stream_dataset_tokens", job=job, dataset=dataset, stage=stage) == n
    epochs = samples(fams, "tokenfeed_dataset_epoch", job=job)
    assert {dict(k)["dataset"] for k in epochs} == set(datasets) and all(v >= 0 for v in epochs.values())
    assert value(fams, "tokenfeed_sessions") == 0
    assert value(fams, "tokenfeed_sessions_opened_total") == 1
    assert value(fams, "tokenfeed_ready_seconds") > 0
    assert all(v == 0 for v in samples(fams, "tokenfeed_quarantined_shards").values())
    # Histograms: cumulative buckets ending in +Inf = count.
    for name in ("tokenfeed_client_wait_seconds", "tokenfeed_daemon_wait_seconds"):
        buckets = sorted(((float(dict(k)["le"]), v) for k, v in samples(fams, name + "_bucket").items()))
        assert buckets[-1][0] == float("inf")
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
        assert buckets[-1][1] == value(fams, name + "_count")
    assert value(fams, "tokenfeed_daemon_wait_seconds_count") > 0, "a client with 2 credits keeps the daemon waiting"
    requests = value(fams, "tokenfeed_frame_requests_total")
    ratio = value(fams, "tokenfeed_frame_cache_hit_ratio")
    assert requests > 0 and 0 <= ratio <= 1
    assert ratio == pytest.approx(1 - value(fams, "tokenfeed_frames_decompressed_total") / requests)


def test_stats_prometheus_gives_the_endpoints_families(metrics_daemon, tokenfeed_bin):
    d = metrics_daemon
    with tokenfeed.Client(d.socket, 0, 1, 4, job_id="equal", timeout=TIMEOUT) as c:
        for _ in range(7):
            assert c.next() is not None
    # Once the connection is gone (its writer done), only the uptime and the connection counts move
    # between two reads.
    deadline = time.monotonic() + 10
    while value(endpoint := families(scrape(d.port)), "tokenfeed_connections") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    cli = subprocess.run([tokenfeed_bin, "stats", "--socket", d.socket, "--prometheus"], capture_output=True, text=True, timeout=TIMEOUT)
    assert cli.returncode == 0, cli.stderr
    over_socket = families(cli.stdout)
    fetched = tokenfeed.fetch_stats(d.socket, timeout=TIMEOUT, prometheus=True)
    assert fetched.prometheus_text is not None
    assert tokenfeed.fetch_stats(d.socket, timeout=TIMEOUT).prometheus_text is None
    for fams in (over_socket, families(fetched.prometheus_text)):
        assert fams.keys() == endpoint.keys()
        for name, series in endpoint.items():
            assert series.keys() == fams[name].keys(), name
            if name not in ("tokenfeed_uptime_seconds", "tokenfeed_connections", "tokenfeed_connections_accepted"):
                assert series == fams[name], name
    assert value(over_socket, "tokenfeed_served_batches_total", job="equal", rank="0") >= 7


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_metrics_endpoint_answers_bad_requests(metrics_daemon):
    port = metrics_daemon.port
    assert raw_request(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    answer = raw_request(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in answer
    assert raw_request(port, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_request(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    head = raw_request(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    assert raw_request(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    # The endpoint still serves after all that.
    assert "tokenfeed_uptime_seconds" in scrape(port)


def test_metrics_listen_refuses_other_hosts_unless_told(tmp_path, tokenfeedd_bin, data_root):
    args = [tokenfeedd_bin, "--curriculum", str(data_root / "curriculum.yaml"), "--data-root", str(data_root),
            "--socket", str(tmp_path / "s.sock")]
    refused = subprocess.run(args + ["--metrics-listen", f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert refused.returncode == 2 and "--metrics-listen-any" in refused.stderr, refused.stderr
    bad = subprocess.run(args + ["--metrics-listen", "127.0.0.1"], capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode == 2 and "ADDR:PORT" in bad.stderr, bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run(args + ["--metrics-listen", f"127.0.0.1:{taken.getsockname()[1]}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert busy.returncode == 1 and "bind --metrics-listen" in busy.stderr and "in use" in busy.stderr, busy.stderr
    assert not os.path.exists(tmp_path / "s.sock"), "a daemon that cannot serve its metrics leaves no socket behind"


def test_stats_json_is_rewritten_while_a_session_runs(metrics_daemon):
    d = metrics_daemon
    job = "a job/../with odd ch\u00e4rs"
    with tokenfeed.Client(d.socket, 0, 1, 4, job_id=job, credits=1, timeout=TIMEOUT) as c:
        for _ in range(3):
            assert c.next() is not None
        daemon_stats = d.state / "stats.json"
        job_stats = d.state / "jobs" / "a%20job%2F..%2Fwith%20odd%20ch%C3%A4rs" / "stats.json"
        deadline = time.monotonic() + 20
        while not (daemon_stats.exists() and job_stats.exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        # The session is still open: the files come from the periodic rewrite, not from a session's end.
        first = json.loads(daemon_stats.read_text())
        assert first["batches_served"] >= 3 and [x["job_id"] for x in first["clients"]] == [job]
        assert json.loads(job_stats.read_text())["position_sequence"] >= 12
        for _ in range(10):
            assert c.next() is not None
        deadline = time.monotonic() + 20
        while json.loads(daemon_stats.read_text())["batches_served"] < 13 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert json.loads(daemon_stats.read_text())["batches_served"] >= 13
    assert sorted(os.listdir(d.state / "jobs")) == [job_stats.parent.name]


def test_two_jobs_on_one_daemon_keep_separate_cursors_and_each_resumes_exactly(tmp_path, tokenfeedd_bin, data_root):
    state = tmp_path / "state"
    d = Daemon(tokenfeedd_bin, data_root / "curriculum.yaml", data_root, tmp_path, ["--state-dir", str(state)])
    try:
        W, B = 2, 3
        reference = {r: [] for r in range(W)}
        with tokenfeed.Client(d.socket, 0, W, B, job_id="reference", timeout=TIMEOUT) as c0, \
                tokenfeed.Client(d.socket, 1, W, B, job_id="reference", timeout=TIMEOUT) as c1:
            for _ in range(30):
                for r, c in enumerate((c0, c1)):
                    reference[r] += copy_rows(c.next())
        # Two jobs read different lengths; credits 1, so the daemon has sent exactly what each read.
        lengths = {"alpha": 7, "beta": 19}
        for job, n in lengths.items():
            clients = [tokenfeed.Client(d.socket, r, W, B, job_id=job, credits=1, timeout=TIMEOUT) for r in range(W)]
            for _ in range(n):
                for c in clients:
                    assert c.next() is not None
            for c in clients:
                c.close()
        for job, n in lengths.items():
            for r in range(W):
                path = state / "jobs" / job / f"rank-{r}.cursor"
                deadline = time.monotonic() + 10
                while not path.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                cursor = P.Cursor.from_text(path.read_text())
                # Credit 1 is returned after each batch read, so at most one more batch was sent.
                assert n <= cursor.next_step <= n + 1, (job, r, cursor)
        assert not list(state.glob("rank-*.cursor")), "no cursor at the top of the state directory any more"
        # Resume each job from its own files: the continuation is the reference stream's.
        for job in lengths:
            for r in range(W):
                cursor = (state / "jobs" / job / f"rank-{r}.cursor").read_text()
                step = P.Cursor.from_text(cursor).next_step
                with tokenfeed.Client(d.socket, r, W, B, cursor=cursor.strip(), job_id=job, timeout=TIMEOUT) as c:
                    rows = []
                    for _ in range(30 - step):
                        rows += copy_rows(c.next())
                expected = reference[r][step * B:]
                assert [(x.sequence, x.dataset, x.stage) for x in rows] == [(x.sequence, x.dataset, x.stage) for x in expected]
                assert all(np.array_equal(x.tokens, y.tokens) for x, y in zip(rows, expected))
    finally:
        d.stop()

"""Fixtures of the integration tests: the built binaries, a data root made from the repository's corpus
fixture, a small two-stage curriculum, and running daemons (killed in finalizers).

Binaries are found in the folder named by ``TOKENFEED_BIN`` (or the folder of the file it names), else
on ``PATH``. Tests that need a binary that is not there are skipped with the reason.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
CORPUS = REPO / "fixtures" / "corpus" / "llama3-text"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the package, when not installed

SEQUENCE_LENGTH = 64
STAGE_BOUNDARY = 10_000  # not a multiple of 64: the decay stage starts with sequence ceil(10000 / 64) = 157
END_TOKEN = 200_000
WEIGHTS = [{"web": 0.7, "synth": 0.3}, {"web": 0.2, "synth": 0.8}]
SYNTH_DOCUMENTS = 800

CURRICULUM = f"""\
sequence_length: {SEQUENCE_LENGTH}
seed: 3
stages:
  - name: stable
    start: 0
    end: {STAGE_BOUNDARY}
    mixture: {{web: {WEIGHTS[0]['web']}, synth: {WEIGHTS[0]['synth']}}}
  - name: decay
    start: {STAGE_BOUNDARY}
    end: {END_TOKEN}
    mixture: {{web: {WEIGHTS[1]['web']}, synth: {WEIGHTS[1]['synth']}}}
"""


def find_binary(name: str) -> str | None:
    """The path of binary ``name``: in ``$TOKENFEED_BIN`` (a folder, or a file in that folder), else on PATH."""
    env = os.environ.get("TOKENFEED_BIN")
    if env:
        folder = pathlib.Path(env)
        if folder.is_file():
            folder = folder.parent
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require_binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.skip(f"{name} is not built (not on PATH, nor in $TOKENFEED_BIN); build it with `swift build`")
    return path


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_synthetic_datatrove(folder: pathlib.Path) -> None:
    """A datatrove dataset of 800 documents of random uint32 tokens (each ending with EOS 128001)."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 300, size=SYNTH_DOCUMENTS)
    tokens = rng.integers(0, 128000, size=int(lengths.sum()), dtype=np.uint32)
    ends = np.cumsum(lengths).astype("<u8")
    tokens[ends - 1] = 128001
    tokens.astype("<u4").tofile(folder / "synth.ds")
    ends.tofile(folder / "synth.ds.index")


@pytest.fixture(scope="session")
def tokenfeed_bin() -> str:
    return require_binary("tokenfeed")


@pytest.fixture(scope="session")
def tokenfeedd_bin() -> str:
    return require_binary("tokenfeedd")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory, tokenfeed_bin) -> pathlib.Path:
    """``ROOT/web`` (the corpus fixture's two parts, 4,096 tokens a frame) and ``ROOT/synth`` (1,000 a
    frame), plus ``ROOT/curriculum.yaml``."""
    root = tmp_path_factory.mktemp("data")
    run([tokenfeed_bin, "shard", "import", "--from", "datatrove", *map(str, sorted(CORPUS.glob("*.ds"))),
         "--out", str(root / "web"), "--tokens-per-frame", "4096", "--vocab-size", "128256"])
    src = tmp_path_factory.mktemp("synth-src")
    write_synthetic_datatrove(src)
    run([tokenfeed_bin, "shard", "import", "--from", "datatrove", str(src / "synth.ds"),
         "--out", str(root / "synth"), "--tokens-per-frame", "1000", "--vocab-size", "128256"])
    (root / "curriculum.yaml").write_text(CURRICULUM)
    return root


class Daemon:
    """A running ``tokenfeedd`` on a socket in a temporary folder."""

    def __init__(self, binary: str, curriculum: pathlib.Path, root: pathlib.Path, folder: pathlib.Path,
                 extra: list[str] | None = None, socket: str | None = None):
        self.socket = socket or str(folder / "tokenfeed.sock")
        self.log_path = folder / "tokenfeedd.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--curriculum", str(curriculum), "--data-root", str(root), "--socket", self.socket, *(extra or [])],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                raise AssertionError(f"tokenfeedd exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"tokenfeedd did not open {self.socket} within 60 s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory, tokenfeedd_bin, data_root):
    """One daemon shared by the tests of the session (each test uses its own job_id)."""
    d = Daemon(tokenfeedd_bin, data_root / "curriculum.yaml", data_root, tmp_path_factory.mktemp("daemon"))
    yield d
    d.stop()
    assert d.proc.returncode == 0, f"tokenfeedd exited {d.proc.returncode}:\n{d.log()}"


@pytest.fixture
def start_daemon(tmp_path, tokenfeedd_bin, data_root):
    """Starts private daemons for a test (stopped at its end)."""
    started: list[Daemon] = []

    def start(curriculum: pathlib.Path | None = None, extra: list[str] | None = None, socket: str | None = None) -> Daemon:
        folder = tmp_path / f"daemon{len(started)}"
        folder.mkdir()
        d = Daemon(tokenfeedd_bin, curriculum or data_root / "curriculum.yaml", data_root, folder, extra, socket)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()

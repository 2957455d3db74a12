"""``--order nanotron`` against an independent re-implementation of nanotron's and datatrove's data path.

The reference below is written from nanotron's ``smollm3`` branch and datatrove, not from tokenfeed's
code:

- ``BlendableDataset`` + ``helpers.cpp build_blending_indices``: weights normalised by ``np.sum`` (float64),
  sample ``j`` goes to the first dataset with the strictly largest ``w·max(j, 1) − count`` (IEEE doubles,
  the product rounded first: Python floats);
- the trainer's per-folder consumption: after step ``t`` it adds the samples of the blend's **global**
  index range ``[(t − 1)·GBS, t·GBS)``; the next stage's ``offsets_in_samples`` are the sums over the
  previous stages (``get_tb_datasets``), keyed by ``dataset_folder``; every stage's sampler restarts at 0;
- ``DatatroveFolderDataset``: ``*.ds`` files in sorted path order, windows of ``L + 1`` tokens at stride
  ``L + 1`` inside each file, no epochs; positions restart after every EOS token;
- ``DataCollatorForCLM``: label ``t`` is masked where the position of token ``t + 1`` is 0;
- ``MegatronPretrainingSampler``: micro-batch ``m`` of step ``s`` for DP rank ``r`` holds samples
  ``s·GBS + m·mbs·dp + r·mbs + [0, mbs)``.

The data: datatrove folders (``.ds`` + ``.ds.index``, one EOS at the end of every document, as
datatrove's tokenizer writes them; written by datatrove's ``TokenizedFile`` when datatrove is installed,
else the same bytes with numpy) for every dataset of the official SmolLM3 stage files, imported with
``tokenfeed shard import --from datatrove``; the official ``stage3_9T_11T.yaml`` with its three stages and
all their datasets and weights, scaled down in batch size, sequence length and steps so that the whole
run is a few thousand samples (the rules do not depend on the scale). With datatrove installed (and
torch) its own ``DatatroveFolderDataset`` is checked against the reference windows too.
"""

from __future__ import annotations

import bisect
import json
import pathlib
import subprocess

import numpy as np
import pytest
from conftest import REPO, Daemon, run

import tokenfeed
from tokenfeed import protocol as P

yaml = pytest.importorskip("yaml", reason="PyYAML reads the nanotron configs")
try:  # datatrove's writer when datatrove is installed (it needs `tokenizers`), else the same format written with numpy
    from datatrove.pipeline.tokens.tokenizer import TokenizedFile
except ImportError:
    TokenizedFile = None

OFFICIAL = REPO / "fixtures" / "curricula" / "smollm3" / "stage3_9T_11T.yaml"
L = 31                 # sequence_length: windows of 32 tokens
DP, MBS, ACC = 3, 2, 2  # GBS = 12
GBS = DP * MBS * ACC
STARTS = (1, 61, 96)   # start_training_step of the three stages
TRAIN_STEPS = 120
EOS = 128001


# -- the scaled official config and its data -------------------------------------------------------


def scaled_config(path: pathlib.Path, starts=STARTS, train_steps=TRAIN_STEPS) -> dict:
    cfg = yaml.safe_load(OFFICIAL.read_text())
    cfg["tokens"].update(sequence_length=L, micro_batch_size=MBS, batch_accumulation_per_replica=ACC, train_steps=train_steps)
    cfg["parallelism"]["dp"] = DP
    for stage, start in zip(cfg["data_stages"], starts):
        stage["start_training_step"] = start
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def last(path: str) -> str:
    return path.rstrip("/").split("/")[-1]


def folders_of(cfg: dict) -> dict[str, list[str]]:
    """identity (dataset_folder) -> the local folder names of its read paths (last components), in order."""
    out: dict[str, list[str]] = {}
    for stage in cfg["data_stages"]:
        ds = stage["data"]["dataset"]
        for read, folder in zip(ds["dataset_read_path"], ds["dataset_folder"]):
            names = out.setdefault(folder.rstrip("/"), [])
            if last(read) not in names:
                names.append(last(read))
    return out


def write_datatrove_file(path: pathlib.Path, rng, tokens_at_least: int) -> None:
    """Whole documents of 1…2L tokens, each ending with EOS, until the file holds at least `tokens_at_least`."""
    lengths = []
    total = 0
    while total < tokens_at_least or not lengths:
        n = int(rng.integers(1, 2 * L))
        lengths.append(n)
        total += n
    tokens = rng.integers(0, 128000, size=total, dtype=np.uint32)
    ends = np.cumsum(lengths).astype("<u8")
    tokens[ends - 1] = EOS
    if TokenizedFile is not None:  # datatrove's own writer: X.ds and X.ds.index
        out = TokenizedFile(str(path.parent), path.name, save_index=True, token_size=4)
        for a, b in zip(np.concatenate([[0], ends[:-1]]), ends):
            out.write(tokens[int(a):int(b)].tolist(), None)
        out.close()
        return
    tokens.astype("<u4").tofile(path)  # the same bytes, written here
    ends.tofile(str(path) + ".index")


def write_dataset(folder: pathlib.Path, rng, windows: int) -> None:
    """A datatrove folder with at least `windows` windows over 1–3 files of uneven sizes (tails that are
    not whole windows; sometimes a file too small for any window)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = int(rng.integers(1, 4))
    split = np.sort(rng.integers(0, windows + 1, size=files - 1))
    counts = np.diff(np.concatenate([[0], split, [windows]]))
    for k, count in enumerate(counts):
        tail = int(rng.integers(0, L + 1))
        write_datatrove_file(folder / f"{k:05d}_tokenized.ds", rng, int(count) * (L + 1) + tail)
    if rng.random() < 0.3:
        write_datatrove_file(folder / f"{files:05d}_small.ds", rng, 1)


# -- the reference -----------------------------------------------------------------------------------


def blend(weights: list[float], n: int) -> list[int]:
    """helpers.cpp build_blending_indices over weights normalised as BlendableDataset does."""
    w = np.array(weights, dtype=np.float64)
    w /= np.sum(w)
    w = [float(x) for x in w]
    counts = [0] * len(w)
    out = []
    for j in range(n):
        x = max(float(j), 1.0)
        best, best_error = 0, w[0] * x - float(counts[0])
        for d in range(1, len(w)):
            e = w[d] * x - float(counts[d])
            if e > best_error:
                best, best_error = d, e
        out.append(best)
        counts[best] += 1
    return out


class DatatroveFolder:
    """DatatroveFolderDataset over raw files: windows of L + 1 tokens inside each file, files sorted."""

    def __init__(self, folder: pathlib.Path):
        self.files = sorted(str(p) for p in folder.glob("*.ds"))
        self.lens = np.cumsum([0] + [p.stat().st_size // 4 // (L + 1) for p in map(pathlib.Path, self.files)]).tolist()

    def __len__(self) -> int:
        return self.lens[-1]

    def __getitem__(self, item: int) -> dict:
        assert 0 <= item < len(self), f"sample {item} past the folder's {len(self)} windows (nanotron has no epochs)"
        f = bisect.bisect(self.lens, item) - 1
        w = item - self.lens[f]
        tokens = np.fromfile(self.files[f], dtype="<u4", count=L + 1, offset=w * (L + 1) * 4).astype(np.int64)
        positions = np.ones(L + 1, dtype=np.int64)
        starts = np.concatenate([[0], np.where(tokens[:-1] == EOS)[0] + 1])
        previous = np.concatenate([[-1], starts[:-1]])
        positions[starts] = previous - starts + 1
        return {"input_ids": tokens, "positions": np.cumsum(positions), "file": self.files[f], "window": w}


class Reference:
    """nanotron's samples for the stages of `cfg`, over raw datatrove folders in `src`."""

    def __init__(self, cfg: dict, src: pathlib.Path):
        stages = cfg["data_stages"]
        self.starts = [(s["start_training_step"] - 1) * GBS for s in stages]
        self.ends = self.starts[1:] + [cfg["tokens"]["train_steps"] * GBS]
        self.stage_steps = [s["start_training_step"] for s in stages] + [cfg["tokens"]["train_steps"] + 1]
        self.folders: list[list[str]] = []       # per stage: dataset_folder of each entry
        self.reads: list[list[str]] = []         # per stage: local folder name of each entry
        self.index: list[list[int]] = []         # per stage: the blend over [0, end of its global range)
        self.offsets: list[dict[str, int]] = []  # per stage: offsets_in_samples per folder
        consumed: list[dict[str, int]] = []      # per stage: consumed tokens per folder (trainer metadata)
        for s, stage in enumerate(stages):
            ds = stage["data"]["dataset"]
            folders = [f.rstrip("/") for f in ds["dataset_folder"]]
            self.folders.append(folders)
            self.reads.append([last(r) for r in ds["dataset_read_path"]])
            self.index.append(blend(ds["dataset_weights"], self.ends[s]))
            tokens: dict[str, int] = {}
            for c in consumed:
                for f, t in c.items():
                    tokens[f] = tokens.get(f, 0) + t
            self.offsets.append({f: t // L for f, t in tokens.items()})
            mine = {f: 0 for f in folders}
            for step in range(self.stage_steps[s], self.stage_steps[s + 1]):
                for d in self.index[s][(step - 1) * GBS: step * GBS]:
                    mine[folders[d]] += L
            consumed.append(mine)
        # sample index within its folder of every stage-local blended sample
        self.sample: list[list[int]] = []
        for s in range(len(stages)):
            seen = [0] * len(self.folders[s])
            out = []
            for d in self.index[s][: self.ends[s] - self.starts[s]]:
                out.append(seen[d] + self.offsets[s].get(self.folders[s][d], 0))
                seen[d] += 1
            self.sample.append(out)
        self.src = src
        self._open: dict[str, DatatroveFolder] = {}

    def folder(self, name: str) -> DatatroveFolder:
        if name not in self._open:
            self._open[name] = DatatroveFolder(self.src / name)
        return self._open[name]

    def global_sample(self, i: int) -> tuple[int, str, int]:
        """(stage, dataset_folder, sample index in the folder) of global sample i."""
        s = bisect.bisect(self.starts, i) - 1
        j = i - self.starts[s]
        d = self.index[s][j]
        return s, self.folders[s][d], self.sample[s][j]

    def item(self, i: int) -> dict:
        s, _, sample = self.global_sample(i)
        d = self.index[s][i - self.starts[s]]
        return self.folder(self.reads[s][d])[sample]

    def needed(self) -> dict[str, int]:
        """Per folder: one past the highest sample index read."""
        out: dict[str, int] = {}
        for s in range(len(self.starts)):
            for j, sample in enumerate(self.sample[s]):
                f = self.folders[s][self.index[s][j]]
                out[f] = max(out.get(f, 0), sample + 1)
        return out


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm3(tmp_path_factory, tokenfeed_bin):
    """(config path, data root, reference, plan JSON) for the scaled official stage-3 file."""
    base = tmp_path_factory.mktemp("smollm3-nanotron")
    cfg = scaled_config(base / "stage3.yaml")
    ref = Reference(cfg, base / "src")
    needed = ref.needed()
    rng = np.random.default_rng(10)
    root = base / "root"
    root.mkdir()
    for identity, names in folders_of(cfg).items():
        write_dataset(base / "src" / names[0], rng, needed.get(identity, 0) + int(rng.integers(0, 3)))
        run([tokenfeed_bin, "shard", "import", "--from", "datatrove", str(base / "src" / names[0]),
             "--out", str(root / names[0]), "--tokens-per-frame", "512", "--vocab-size", "128256"])
        for other in names[1:]:  # stack-edu-HTML: read from stack-v2-HTML, then stack-edu-HTML: one identity
            (root / other).symlink_to(root / names[0])
            (base / "src" / other).symlink_to(base / "src" / names[0])
    plan = json.loads(run([tokenfeed_bin, "plan", str(base / "stage3.yaml"), "--data-root", str(root),
                           "--order", "nanotron", "--json"]).stdout)
    return base / "stage3.yaml", root, ref, plan


def dump(tokenfeed_bin, config, root, *, step: int, count: int, rank=0, world=1, batch=GBS, order="nanotron") -> list[dict]:
    out = run([tokenfeed_bin, "dump", "--offline", str(config), "--data-root", str(root), "--order", order,
               "--step", str(step), "--count", str(count), "--rank", str(rank), "--world-size", str(world),
               "--batch-size", str(batch), "--json"], timeout=600).stdout
    return [json.loads(line) for line in out.splitlines()]


def check_record(record: dict, ref: Reference, names: dict[str, str]) -> None:
    i = record["sequence"]
    s, folder, _ = ref.global_sample(i)
    item = ref.item(i)
    assert names[record["dataset"]] == folder, f"sequence {i}"
    assert record["stage"] == ["stable", "stable stage 2", "decay stage"][s]
    assert record["epoch"] == 0
    assert np.array_equal(np.array(record["tokens"]), item["input_ids"]), f"sequence {i}: tokens"
    # positions restart after every EOS; the label before a position 0 is masked (DataCollatorForCLM)
    cu = record["cu_seqlens"]
    positions = np.concatenate([np.arange(b - a) for a, b in zip(cu, cu[1:])])
    assert np.array_equal(positions, item["positions"]), f"sequence {i}: positions"
    mask = np.ones(L, dtype=bool)
    for boundary in cu[1:-1]:
        mask[boundary - 1] = False
    assert np.array_equal(mask, item["positions"][1:] != 0), f"sequence {i}: label mask"
    # provenance: one shard file (the .ds file of the same name), the window at stride L + 1
    shards = {p["shard"] for p in record["provenance"]}
    assert len(shards) == 1, f"sequence {i} crosses files: {shards}"
    assert pathlib.Path(shards.pop()).stem == pathlib.Path(item["file"]).stem
    assert record["provenance"][0]["offset"] == item["window"] * (L + 1)


# -- tests ---------------------------------------------------------------------------------------------


def test_every_sample_of_the_three_stages_is_nanotrons(smollm3, tokenfeed_bin):
    config, root, ref, plan = smollm3
    names = {d["name"]: d["identity"] for d in plan["identities"]}
    records = dump(tokenfeed_bin, config, root, step=0, count=TRAIN_STEPS)
    assert [r["sequence"] for r in records] == list(range(TRAIN_STEPS * GBS))
    for record in records:
        check_record(record, ref, names)


def test_stage_switch_positions_are_nanotrons_carry(smollm3):
    """Each stage starts each folder at nanotron's offset (the sum of the previous stages' consumption
    counted over their global index ranges), off by one from the samples really read for some."""
    _, _, ref, plan = smollm3
    assert plan["order"] == "nanotron"
    names = {d["name"]: d["identity"] for d in plan["identities"]}
    off_by_one = 0
    for s, stage in enumerate(plan["nanotron"]["stages"]):
        for entry in stage:
            folder = names[entry["name"]]
            assert entry["first_sample"] == ref.offsets[s].get(folder, 0), (s, folder)
            off_by_one += entry["first_sample"] != entry["read_before"]
            assert abs(entry["first_sample"] - entry["read_before"]) <= 3 * s
    assert off_by_one > 0, "the scaled run should show nanotron's off-by-one carry somewhere"
    html = "s3://smollm3/datasets/llama_tokenized-individual-chunks/stack-edu-HTML"
    html_name = next(n for n, i in names.items() if i == html)
    first = [next(e["first_sample"] for e in st if e["name"] == html_name) for st in plan["nanotron"]["stages"]]
    assert first == [0, ref.offsets[1][html], ref.offsets[2][html]] and first[2] > first[1] > 0


@pytest.mark.parametrize("rank", range(DP))
def test_rank_slice_with_gradient_accumulation(smollm3, tokenfeed_bin, rank):
    """A tokenfeed batch is one micro-batch: world size dp, batch size micro_batch_size, ACC batches a step."""
    config, root, ref, plan = smollm3
    names = {d["name"]: d["identity"] for d in plan["identities"]}
    first_step = STARTS[1] - 3  # steps across the first stage switch
    records = dump(tokenfeed_bin, config, root, step=(first_step - 1) * ACC, count=6 * ACC, rank=rank, world=DP, batch=MBS)
    expected = [(s - 1) * GBS + m * MBS * DP + rank * MBS + k
                for s in range(first_step, first_step + 6) for m in range(ACC) for k in range(MBS)]
    assert [r["sequence"] for r in records] == expected
    for record in records:
        check_record(record, ref, names)


def test_reference_windows_match_datatrove(smollm3):
    """The reference's windows and positions are datatrove's own (when datatrove and torch are installed)."""
    pytest.importorskip("torch", reason="datatrove's dataset classes need torch")
    dataset_module = pytest.importorskip("datatrove.utils.dataset", reason="datatrove is not installed")
    _, _, ref, _ = smollm3
    name = ref.reads[2][0]
    folder = ref.src / name
    real = dataset_module.DatatroveFolderDataset(str(folder), seq_len=L, token_size=4, recursive=False,
                                                 filename_pattern="*.ds", return_positions=True,
                                                 positions_from_eos_token_id=EOS)
    mine = ref.folder(name)
    assert len(real) == len(mine)
    for item in range(len(mine)):
        a, b = real[item], mine[item]
        assert np.array_equal(a["input_ids"].numpy(), b["input_ids"]) and np.array_equal(a["positions"].numpy(), b["positions"])


def test_past_the_end_is_a_plan_error_naming_the_dataset(smollm3, tokenfeed_bin, tmp_path):
    config, root, ref, _ = smollm3
    longer = tmp_path / "longer.yaml"
    scaled_config(longer, train_steps=TRAIN_STEPS * 40)
    proc = subprocess.run([tokenfeed_bin, "plan", str(longer), "--data-root", str(root), "--order", "nanotron"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "--order nanotron reads" in proc.stderr and "nanotron has no epochs" in proc.stderr and "dataset " in proc.stderr
    # the quota order serves the same config (it wraps to the next epoch)
    run([tokenfeed_bin, "plan", str(longer), "--data-root", str(root)], timeout=600)


def test_plan_says_which_order(smollm3, tokenfeed_bin):
    config, root, _, _ = smollm3
    quota = run([tokenfeed_bin, "plan", str(config), "--data-root", str(root)]).stdout
    nanotron = run([tokenfeed_bin, "plan", str(config), "--data-root", str(root), "--order", "nanotron"]).stdout
    assert "order quota:" in quota and "order nanotron:" not in quota
    assert "order nanotron:" in nanotron and f"world size {DP} (dp) × batch size {MBS} (micro_batch_size), {ACC} batches per training step" in nanotron
    assert json.loads(run([tokenfeed_bin, "plan", str(config), "--json"]).stdout)["order"] == "quota"


# -- the daemon ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nanotron_daemon(smollm3, tokenfeedd_bin, tmp_path_factory):
    config, root, _, _ = smollm3
    folder = tmp_path_factory.mktemp("nanotron-daemon")
    (folder / "tokenfeedd.yaml").write_text("order: nanotron\n")
    d = Daemon(tokenfeedd_bin, config, root, folder, extra=["--config", str(folder / "tokenfeedd.yaml")])
    yield d
    d.stop()
    assert d.proc.returncode == 0, d.log()


def test_daemon_serves_what_dump_offline_computes(smollm3, nanotron_daemon, tokenfeed_bin):
    config, root, _, plan = smollm3
    steps = (STARTS[2] - 2) * ACC  # micro-batches up to just past the second stage switch
    for rank in range(DP):
        offline = dump(tokenfeed_bin, config, root, step=0, count=steps, rank=rank, world=DP, batch=MBS)
        with tokenfeed.Client(nanotron_daemon.socket, rank, DP, MBS, job_id="nanotron-equal", timeout=60) as c:
            served = []
            for _ in range(steps):
                b = c.next()
                served += [(r.sequence_index, r.tokens.tolist(), r.cu_seqlens.tolist()) for r in (b.row(i) for i in range(MBS))]
        assert served == [(r["sequence"], r["tokens"], r["cu_seqlens"]) for r in offline]


def test_resume_at_any_batch_continues_identically(smollm3, nanotron_daemon):
    total = (STARTS[2] + 2) * ACC
    with tokenfeed.Client(nanotron_daemon.socket, 0, 1, MBS, job_id="nanotron-whole", timeout=60) as c:
        whole = []
        for _ in range(total):
            b = c.next()
            whole.append([(r.sequence_index, r.tokens.tolist()) for r in (b.row(i) for i in range(MBS))])
    for cut in (1, STARTS[1] * ACC - 3, (STARTS[1] - 1) * ACC, STARTS[2] * ACC - 5):
        with tokenfeed.Client(nanotron_daemon.socket, 0, 1, MBS, job_id=f"nanotron-cut{cut}", timeout=60) as c:
            for _ in range(cut):
                c.next()
            cursor = c.cursor
        with tokenfeed.Client(nanotron_daemon.socket, 0, 1, MBS, job_id=f"nanotron-resume{cut}", timeout=60, cursor=cursor) as c:
            for k in range(cut, total):
                b = c.next()
                assert [(r.sequence_index, r.tokens.tolist()) for r in (b.row(i) for i in range(MBS))] == whole[k], f"resume at {cut}, batch {k}"


def test_a_nanotron_cursor_is_refused_under_quota_naming_the_order(smollm3, nanotron_daemon, tokenfeed_bin, tokenfeedd_bin, tmp_path):
    config, root, _, _ = smollm3
    with tokenfeed.Client(nanotron_daemon.socket, 0, 1, MBS, job_id="nanotron-fp", timeout=60) as c:
        c.next()
        cursor = c.cursor
    proc = subprocess.run([tokenfeed_bin, "cursor", "check", "--cursor", str(cursor), "--curriculum", str(config),
                           "--data-root", str(root), "--previous", str(config), "--previous-order", "nanotron"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "first difference at order: only one of the streams has order=nanotron" in proc.stdout, proc.stdout
    ok = run([tokenfeed_bin, "cursor", "check", "--cursor", str(cursor), "--curriculum", str(config),
              "--data-root", str(root), "--order", "nanotron"], timeout=600)
    assert ok.stdout.startswith("compatible"), ok.stdout
    quota = Daemon(tokenfeedd_bin, config, root, tmp_path)
    try:
        with pytest.raises(tokenfeed.errors.TokenfeedError) as refused:
            with tokenfeed.Client(quota.socket, 0, 1, MBS, job_id="quota-refuses", timeout=60, cursor=cursor) as c:
                c.next()
        assert "fingerprint" in str(refused.value)
    finally:
        quota.stop()

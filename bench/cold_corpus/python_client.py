"""The Python client's side of bench/cold_corpus.sh: `tokenfeed.Client` reading raw batches (every frame
decoded and checked, `inputs`/`labels` views touched), as a trainer's data loader would.

    python bench/cold_corpus/python_client.py SOCKET BATCH_SIZE BATCHES [--credits K]

Prints `batches=… tokens=… seconds=… tokens_per_s=… cpu_s=…` like client.c: tokens are B × L a
batch; the rate is timed from the first batch to the last.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))
import tokenfeed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("batch_size", type=int)
    ap.add_argument("batches", type=int)
    ap.add_argument("--credits", type=int, default=8)
    a = ap.parse_args()
    cpu0 = time.process_time()
    received, sink, first, last, per_batch = 0, 0, 0.0, 0.0, 0
    with tokenfeed.Client(a.socket, 0, 1, a.batch_size, credits=a.credits, timeout=120) as client:
        while received < a.batches:
            batch = client.next()
            if batch is None:
                break
            sink += int(batch.inputs[0, 0]) + int(batch.labels[-1, -1])
            received += 1
            last = time.perf_counter()
            if received == 1:
                first = last
                per_batch = a.batch_size * batch.sequence_length
    cpu = time.process_time() - cpu0
    seconds = last - first
    rate = (received - 1) * per_batch / seconds if received > 1 and seconds > 0 else 0.0
    print(f"batches={received} tokens={received * per_batch} seconds={seconds:.4f} tokens_per_s={rate:.1f}",
          f"cpu_s={cpu:.3f}")
    assert sink >= 0
    sys.exit(0 if received == a.batches else 3)


if __name__ == "__main__":
    main()

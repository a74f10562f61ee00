"""One thread count's faiss and numpy timings for scripts/bench_knn.sh (which see).

python bench_knn.py FEATURES THREADS WORKDIR: reads `train_features`, `test_features` and
`val_features` of the safetensors file with numpy alone, normalises the rows (in f64, as oodpipe),
searches the test then validation rows' 50th nearest training row, prints `faiss THREADS SECONDS`
and `numpy THREADS SECONDS` (best of 3) and writes the K-th squared distances to WORKDIR/<tool>.f64.
"""
import json, struct, sys, time
import numpy as np
import faiss

K = 50
path, threads, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "F64": np.float64}
    return {
        name: np.frombuffer(data[m["data_offsets"][0] : m["data_offsets"][1]], dtype=kinds[m["dtype"]]).reshape(m["shape"])
        for name, m in header.items()
        if name != "__metadata__" and m["dtype"] in kinds
    }


def unit(x):
    x = x.astype(np.float64)
    norm = np.sqrt((x * x).sum(axis=1, keepdims=True))
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def best(f):
    times, out = [], None
    for _ in range(3):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


t = read(path)
train, queries = t["train_features"], np.concatenate([t["test_features"], t["val_features"]])
faiss.omp_set_num_threads(threads)


def with_faiss():
    index = faiss.IndexFlatL2(train.shape[1])
    index.add(unit(train))
    distances, _ = index.search(unit(queries), K)
    return distances[:, -1].astype(np.float64)


def with_numpy():
    tr = unit(train)
    tr_sq = (tr * tr).sum(axis=1)
    q = unit(queries)
    out = []
    for start in range(0, len(q), 1024):
        b = q[start : start + 1024]
        d2 = tr_sq[None, :] - 2.0 * (b @ tr.T)
        kth = np.partition(d2, K - 1, axis=1)[:, K - 1]
        out.append(np.maximum(kth + (b * b).sum(axis=1), 0.0))
    return np.concatenate(out).astype(np.float64)


for name, f in (("faiss", with_faiss), ("numpy", with_numpy)):
    seconds, kth = best(f)
    kth.astype("<f8").tofile(f"{work}/{name}.f64")
    print(f"{name} {threads} {seconds:.3f}")

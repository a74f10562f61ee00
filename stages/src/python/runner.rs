//! The runner of a Python detector: the Python program a `score.<name>.<set>` stage of a
//! `[python.<name>]` table runs (`python -I runner.py manifest.json`). It loads the user's file,
//! calls its `fit(train, params)` (when it has one) and `score(state, x, params)` once per split,
//! and writes each split's scores as little-endian f64 for the stage to read. The inputs are read
//! straight from the stored safetensors files with numpy alone (the header is JSON, the data a
//! raw array: mapped, copy on write, only what the script touches), so nothing beyond numpy is
//! needed and nothing is copied before it is used. What the user's functions get and must return,
//! and every way they can fail, is said in the README ("A detector in Python").
//!
//! Kept as Rust text so that the code-version check (`stages/tests/code_versions.rs`) sees a
//! change to it: the stage's salt is `oodpipe_plan::python::VERSION`.

/// The program. Exit status: 0 done; 1 an exception in the user's code (Python's traceback on
/// stderr); 2 the user's code broke the contract (one `oodpipe:` line on stderr); 3 numpy missing.
pub const RUNNER: &str = r#"
import sys, os, json, importlib.util


def fail(message, code=2):
    sys.stderr.write("oodpipe: " + message + "\n")
    sys.exit(code)


try:
    import numpy as np
except ImportError as e:
    fail("numpy cannot be imported by the Python interpreter %s (%s): install numpy there (`make python` makes "
         ".venv with it) or name another interpreter with $OODPIPE_PYTHON or `[python] interpreter`" % (sys.executable, e), 3)

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def tensor(path, name):
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    meta = header[name]
    start, end = meta["data_offsets"]
    shape = tuple(meta["shape"])
    if end == start:
        return np.zeros(shape, dtype=DTYPES[meta["dtype"]])
    return np.asarray(np.memmap(path, dtype=DTYPES[meta["dtype"]], mode="c", offset=8 + size + start, shape=shape))


class Inputs:
    """One split's arrays, read when first used: logits, features, labels, weight, bias."""

    def __init__(self, about, features_hint):
        self._refs = about["arrays"]
        self._what = about["what"]
        self._hint = features_hint
        self._loaded = {}
        self.set = about["set"]
        self.split = about["split"]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._loaded:
            if name == "logits" and "logits" not in self._refs and "features" in self._refs:
                value = self.features @ self.weight.T + self.bias
            elif name in self._refs:
                value = tensor(*self._refs[name])
            else:
                hint = self._hint if name in ("features", "weight", "bias", "logits") else ""
                raise AttributeError("%s has no `%s` (it has: %s)%s" % (self._what, name, ", ".join(sorted(self._refs)), hint))
            self._loaded[name] = value
        return self._loaded[name]


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    shown = manifest["shown"]
    script = manifest["script"]
    sys.path.insert(0, os.path.dirname(script))
    spec = importlib.util.spec_from_file_location("oodpipe_detector_" + manifest["name"], script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    score = getattr(module, "score", None)
    if not callable(score):
        fail("%s defines no function `score(state, x, params)` (called once per split with its arrays x.logits, "
             "x.features, ...; it returns one number per image, higher = more in-distribution)" % shown)
    fit = getattr(module, "fit", None)
    if fit is not None and not callable(fit):
        fail("%s: `fit` is not a function: expected `fit(train, params) -> state`, or no `fit`" % shown)
    params = manifest["params"]
    hint = manifest["features_hint"]
    state = fit(Inputs(manifest["train"], hint), params) if fit is not None else None
    for item in manifest["score"]:
        out = score(state, Inputs(item, hint), params)
        try:
            scores = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as e:
            fail("%s: score() returned %s for %s, not numbers (%s)" % (shown, type(out).__name__, item["what"], e))
        n = item["n"]
        if scores.shape != (n,):
            fail("%s: score() returned shape %s for %s (%d images): expected one score per image, shape (%d,)"
                 % (shown, scores.shape, item["what"], n, n))
        bad = ~np.isfinite(scores)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            fail("%s: score() returned %d values that are NaN or infinite for %s (the first for image %d: %r): "
                 "expected finite numbers" % (shown, int(bad.sum()), item["what"], first, float(scores[first])))
        scores.astype("<f8").tofile(item["out"])


main()
"#;

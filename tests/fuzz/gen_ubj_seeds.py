#!/usr/bin/env python3
"""Writes the committed seeds of fuzz_ubj (tests/fuzz/seeds/ubj/): small xgboost models turned
into UBJSON the way xgboost's UBJWriter lays them out (keys as 'L' + int64 length, strings
'S' 'L' ..., big-endian typed arrays: float32 'd' for values, int32 'l' for node indices, uint8
'U' for flags, int64 'L' for category segments/sizes; other arrays generic '[#L n').  Run once from
the repo root (standard library only):

    python3 tests/fuzz/gen_ubj_seeds.py

Sources: three 1.7.4 fixtures (tests/fixtures) and the first trees of the two xgboost 3.5
multi-target cases (tests/fixtures/refs), so that vector leaves and vector base_score are seeded."""
import json, os, struct

F32 = {"split_conditions", "base_weights", "loss_changes", "sum_hessian", "leaf_weights",
       "weight_drop"}
I32 = {"left_children", "right_children", "parents", "split_indices", "categories",
       "categories_nodes"}
U8 = {"default_left", "split_type"}
I64 = {"categories_segments", "categories_sizes"}


def integer(v):
    for m, fmt, lo, hi in (("i", ">b", -128, 127), ("I", ">h", -2**15, 2**15 - 1),
                           ("l", ">i", -2**31, 2**31 - 1), ("L", ">q", -2**63, 2**63 - 1)):
        if lo <= v <= hi:
            return m.encode() + struct.pack(fmt, v)
    raise ValueError(v)


def value(v, key=None):
    if isinstance(v, dict):
        out = b"{"
        for k, x in v.items():
            kb = k.encode()
            out += b"L" + struct.pack(">q", len(kb)) + kb + value(x, k)
        return out + b"}"
    if isinstance(v, str):
        b = v.encode()
        return b"SL" + struct.pack(">q", len(b)) + b
    if isinstance(v, bool):
        return b"T" if v else b"F"
    if isinstance(v, int):
        return integer(v)
    if isinstance(v, float):
        return b"d" + struct.pack(">f", v)
    if isinstance(v, list):
        n = struct.pack(">q", len(v))
        if key in F32:
            return b"[$d#L" + n + b"".join(struct.pack(">f", float(x)) for x in v)
        if key in I32:
            return b"[$l#L" + n + b"".join(struct.pack(">i", int(x)) for x in v)
        if key in U8:
            return b"[$U#L" + n + b"".join(struct.pack(">B", int(x)) for x in v)
        if key in I64:
            return b"[$L#L" + n + b"".join(struct.pack(">q", int(x)) for x in v)
        return b"[#L" + n + b"".join(value(x) for x in v)
    raise TypeError(type(v))


def first_trees(m, k):
    g = m["learner"]["gradient_booster"]["model"]
    g["trees"] = g["trees"][:k]
    g["tree_info"] = g["tree_info"][:k]
    g["gbtree_model_param"]["num_trees"] = str(k)
    per = g["iteration_indptr"][1] - g["iteration_indptr"][0]
    g["iteration_indptr"] = list(range(0, k + 1, per))
    return m


def main():
    out = "tests/fuzz/seeds/ubj"
    os.makedirs(out, exist_ok=True)
    for name in ("rank_ndcg", "cat_onehot_softprob", "dart_regression"):
        m = json.load(open(f"tests/fixtures/{name}.model.json"))
        open(f"{out}/seed-{name}.ubj", "wb").write(value(m))
    for case, k in (("xgb_e_multi_target", 4), ("xgb_e2_multi_output_tree", 2)):
        m = first_trees(json.load(open(f"tests/fixtures/refs/{case}/model.json")), k)
        open(f"{out}/seed-{case}.ubj", "wb").write(value(m))


if __name__ == "__main__":
    main()

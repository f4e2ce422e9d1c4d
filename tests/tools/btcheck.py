#!/usr/bin/python3
"""btcheck.py - recomputes a backtest report independently and compares it with vigil's.

    /usr/bin/python3 tests/tools/btcheck.py EXPORT.ndjson MODEL.json REPORT.json PARAMS.json

EXPORT is GET /api/v1/transactions/export over the backtest's window (one transaction per line,
as GET /api/v1/transactions/{id} returns it), MODEL the candidate champion's source (GET
/api/v1/models/{id}/source), REPORT the job's `report`, PARAMS {"review_threshold",
"block_threshold", "fallback_decision", "label_sources": [...] | null, "exponents": {"EUR": 2}}
and, for a candidate with a challenger or rules:
    "challenger_model": path of the challenger's source (its ROC/PR AUC are checked),
    "rules": [{"name", "action", "mode", "py"}] - the candidate's rules in policy order, each with
             a Python expression computing its `when` independently (see rule_env for the names
             it may use: amt, cur, merchant, country, s, ch, inp, lists...),
    "lists": {"name": [values]} - the lists as they are now,
    "extra": {...} - anything else the expressions read (as `extra`: e.g. users' fields by id),
    "live_rules": true - also check that every expression matches exactly the rules the live
             decision recorded (risk.rules) on every non-degraded row: the candidate is the live
             policy (a degraded decision skipped the rules reading a score).
With rules the candidate decision follows Radar's precedence (common/rules.h: an active allow
rule, else an active block rule or score >= block, else an active review rule or score >=
review, else allow) and the per-rule hits, decided counts, precision and fraud amounts caught are
checked.

Scores come from xgboost's own predictor on the features assembled by name from each row's
snapshot (absent -> missing), decisions from the thresholds compared in double, the AUCs from
scikit-learn (roc_auc_score, average_precision_score).  Counts must match exactly, ratios to
1e-12, the AUCs to 1e-9.  Prints "btcheck: OK ..." and exits 0, or lists every mismatch and
exits 1.  Needs Debian's python3-xgboost, python3-numpy and python3-sklearn (make deps).
"""
import decimal
import json
import sys

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

DEC = ["allow", "review", "block"]


def major(minor, exp):
    if exp == 0:
        return str(minor)
    return "%d.%0*d" % (minor // 10 ** exp, exp, minor % 10 ** exp)


def amounts(rows, exps):
    out = {}
    for cur, amt in rows:
        out[cur] = out.get(cur, 0) + amt
    return {c: decimal.Decimal(major(v, exps[c])) for c, v in out.items() if v}


class Check:
    def __init__(self):
        self.errors = []
        self.n = 0

    def eq(self, what, mine, theirs, tol=None):
        self.n += 1
        if mine is None or theirs is None or tol is None:
            ok = mine == theirs
        else:
            ok = abs(mine - theirs) <= tol
        if not ok:
            self.errors.append("%s: python %r, vigil %r" % (what, mine, theirs))


def ratio(a, b):
    return a / b if b else None


def amounts_of(report_amounts):
    # vigil prints exact decimals as JSON numbers: compared as decimals (no binary rounding)
    return {k: decimal.Decimal("%s" % v) for k, v in report_amounts.items()}


def rule_env(t, s, ch, exps, lists, extra):
    """The names a rule's Python expression may use for transaction t."""
    exp = exps[t["currency"]]
    inputs = (t["risk"].get("rule_inputs") or {}).get("numbers") or {}
    return {"t": t, "amt": t["amount"] / 10.0 ** exp, "cur": t["currency"],
            "merchant": t["merchant_id"], "country": t["country"], "s": s, "ch": ch,
            "inp": inputs, "lists": lists, "feat": t.get("features") or {},
            "extra": extra, "isnan": np.isnan}


def decide_rules(rules, matched, s, review, block, fallback):
    """rules_decide: (decision, decided_by index 0 rule..3 default, deciding rule or -1)."""
    def first(action):
        for k, r in enumerate(rules):
            if r["mode"] == "active" and r["action"] == action and matched[k]:
                return k
        return -1
    degraded = np.isnan(s)
    k = first("allow")
    if k >= 0:
        return 0, 0, k
    k = first("block")
    if k >= 0:
        return 2, 0, k
    if not degraded and s >= block:
        return 2, 1, -1
    k = first("review")
    if k >= 0:
        return 1, 0, k
    if not degraded and s >= review:
        return 1, 1, -1
    if degraded:
        return DEC.index(fallback), 2, -1
    return 0, 3, -1


def predict(model_path, txns):
    bst = xgb.Booster()
    bst.load_model(model_path)
    names = bst.feature_names
    X = np.full((len(txns), len(names)), np.nan, dtype=np.float32)
    for i, t in enumerate(txns):
        f = t["features"]
        for k, n in enumerate(names):
            if n in f and f[n] is not None:
                X[i, k] = np.float32(f[n])
    return bst.predict(xgb.DMatrix(X, feature_names=names, missing=np.nan))


def main():
    export, model_path, report_path, params_path = sys.argv[1:5]
    txns = [json.loads(line) for line in open(export) if line.strip()]
    report = json.load(open(report_path), parse_float=lambda s: s)  # numbers' text (amounts)
    rep = json.load(open(report_path))
    p = json.load(open(params_path))
    exps, sources = p["exponents"], p["label_sources"]
    review, block = float(p["review_threshold"]), float(p["block_threshold"])
    bst = xgb.Booster()
    bst.load_model(model_path)
    names = bst.feature_names
    X = np.full((len(txns), len(names)), np.nan, dtype=np.float32)
    missing = {}
    for i, t in enumerate(txns):
        f = t["features"]
        for k, n in enumerate(names):
            if n not in f:
                missing[n] = missing.get(n, 0) + 1
            elif f[n] is not None:
                X[i, k] = np.float32(f[n])
    s32 = bst.predict(xgb.DMatrix(X, feature_names=names, missing=np.nan))
    s = s32.astype(np.float64)  # compared in double, as a live decision compares
    cand = np.where(s >= block, 2, np.where(s >= review, 1, 0))
    rules = p.get("rules") or []
    ch32 = predict(p["challenger_model"], txns) if p.get("challenger_model") else None
    ch = ch32.astype(np.float64) if ch32 is not None else np.full(len(txns), np.nan)
    matched = np.zeros((len(txns), len(rules)), dtype=bool)
    by = np.zeros(len(txns), dtype=int)
    decider = np.full(len(txns), -1)
    for i, t in enumerate(txns):
        env = rule_env(t, s[i], ch[i], exps, p.get("lists") or {}, p.get("extra") or {})
        for k, r in enumerate(rules):
            matched[i, k] = bool(eval(r["py"], {}, env))  # the test's own expressions
        if rules:
            cand[i], by[i], decider[i] = decide_rules(rules, matched[i], s[i], review, block,
                                                      p["fallback_decision"])
    live = np.array([DEC.index(t["risk"]["decision"]) for t in txns])
    degraded = np.array([t["risk"]["degraded"] for t in txns])
    stored = np.array([np.float32(t["risk"]["score"]) if t["risk"]["score"] is not None
                       else np.float32("nan") for t in txns], dtype=np.float32)
    lab = np.array([1 if t["label"] == "fraud" and (sources is None or t["label_source"] in sources)
                    else 0 if t["label"] == "legit" else -1 for t in txns])
    cur = [t["currency"] for t in txns]
    amt = [t["amount"] for t in txns]
    c = Check()
    N = len(txns)
    if p.get("live_rules"):
        for i, t in enumerate(txns):
            if t["risk"]["degraded"]:
                continue
            live_names = sorted(m["name"] for m in (t["risk"].get("rules") or []))
            mine = sorted(r["name"] for k, r in enumerate(rules) if matched[i, k])
            c.eq("live rules of %s" % t["id"], mine, live_names)
    c.eq("rows", N, rep["rows"])
    for d in range(3):
        c.eq("decisions." + DEC[d], int((cand == d).sum()), rep["decisions"][DEC[d]])
        for e in range(3):
            c.eq("live_to_candidate.%s.%s" % (DEC[d], DEC[e]), int(((live == d) & (cand == e)).sum()),
                 rep["live_to_candidate"][DEC[d]][DEC[e]])
    c.eq("block_rate", ratio(int((cand == 2).sum()), N), rep["block_rate"], 1e-12)
    c.eq("review_rate", ratio(int((cand == 1).sum()), N), rep["review_rate"], 1e-12)
    nd = ~degraded
    c.eq("replay.live_degraded", int(degraded.sum()), rep["replay"]["live_degraded"])
    c.eq("replay.compared", int(nd.sum()), rep["replay"]["compared"])
    c.eq("replay.same_score", int((nd & (stored.view(np.uint32) == s32.view(np.uint32))).sum()),
         rep["replay"]["same_score"])
    c.eq("replay.same_decision", int((nd & (live == cand)).sum()), rep["replay"]["same_decision"])
    L = rep["labelled"]
    fraud, legit = lab == 1, lab == 0
    c.eq("labelled.fraud", int(fraud.sum()), L["fraud"])
    c.eq("labelled.legit", int(legit.sum()), L["legit"])
    Lraw = report["labelled"]["by_decision"]
    for d in range(3):
        b = L["by_decision"][DEC[d]]
        c.eq("by_decision.%s.fraud" % DEC[d], int((fraud & (cand == d)).sum()), b["fraud"])
        c.eq("by_decision.%s.legit" % DEC[d], int((legit & (cand == d)).sum()), b["legit"])
        for kind, mask in (("fraud_amount", fraud), ("legit_amount", legit)):
            mine = amounts([(cur[i], amt[i]) for i in range(N) if mask[i] and cand[i] == d], exps)
            c.eq("by_decision.%s.%s" % (DEC[d], kind), mine,
                 amounts_of(Lraw[DEC[d]][kind]))
    F = int(fraud.sum())
    fb, fr = int((fraud & (cand == 2)).sum()), int((fraud & (cand == 1)).sum())
    lb, lr = int((legit & (cand == 2)).sum()), int((legit & (cand == 1)).sum())
    c.eq("block.precision", ratio(fb, fb + lb), L["block"]["precision"], 1e-12)
    c.eq("block.recall", ratio(fb, F), L["block"]["recall"], 1e-12)
    c.eq("block_or_review.precision", ratio(fb + fr, fb + fr + lb + lr),
         L["block_or_review"]["precision"], 1e-12)
    c.eq("block_or_review.recall", ratio(fb + fr, F), L["block_or_review"]["recall"], 1e-12)
    lm = lab >= 0
    y, ys = lab[lm], s32[lm]
    roc = roc_auc_score(y, ys) if 0 < y.sum() < len(y) else None
    ap = average_precision_score(y, ys) if y.sum() > 0 else None
    c.eq("roc_auc", roc, L["roc_auc"], 1e-9)
    c.eq("pr_auc", ap, L["pr_auc"], 1e-9)
    sraw = report["sweep"]
    c.eq("sweep points", 100, len(rep["sweep"]))
    for i in range(100):
        t = i / 100.0
        pt = rep["sweep"][i]
        ge = s >= t
        c.eq("sweep[%d].threshold" % i, t, pt["threshold"], 0.0)
        c.eq("sweep[%d].block_rate" % i, ratio(int(ge.sum()), N), pt["block_rate"], 1e-12)
        band = int(((s >= min(review, t)) & ~ge).sum()) if review < t else 0
        c.eq("sweep[%d].review_rate" % i, ratio(band, N), pt["review_rate"], 1e-12)
        c.eq("sweep[%d].recall" % i, ratio(int((ge & fraud).sum()), F), pt["recall"], 1e-12)
        c.eq("sweep[%d].precision" % i, ratio(int((ge & fraud).sum()), int((ge & lm).sum())),
             pt["precision"], 1e-12)
        mine = amounts([(cur[k], amt[k]) for k in range(N) if ge[k] and fraud[k]], exps)
        c.eq("sweep[%d].fraud_amount_caught" % i, mine, amounts_of(sraw[i]["fraud_amount_caught"]))
    c.eq("missing_features", missing, rep["missing_features"])
    if ch32 is not None:
        cm = lm & ~np.isnan(ch)
        yc, ycs = lab[cm], ch32[cm]
        c.eq("challenger_scored", int((~np.isnan(ch)).sum()), rep["candidate"]["challenger_scored"])
        c.eq("challenger_roc_auc", roc_auc_score(yc, ycs) if 0 < yc.sum() < len(yc) else None,
             L["challenger_roc_auc"], 1e-9)
        c.eq("challenger_pr_auc", average_precision_score(yc, ycs) if yc.sum() > 0 else None,
             L["challenger_pr_auc"], 1e-9)
    if rules:
        R, Rraw = rep["rules"], report["rules"]
        names = ["rule", "score_threshold", "fallback", "default"]
        for b in range(4):
            c.eq("rules.decided_by." + names[b], int((by == b).sum()), R["decided_by"][names[b]])
        c.eq("rules.list_versions", sorted((p.get("lists") or {}).keys()),
             sorted(R["list_versions"].keys()))
        hits = {"active": 0, "shadow": 0}
        c.eq("rules.by_rule", [r["name"] for r in rules], [x["name"] for x in R["by_rule"]])
        for k, r in enumerate(rules):
            x, xraw = R["by_rule"][k], Rraw["by_rule"][k]
            m = matched[:, k]
            hits[r["mode"]] += int(m.sum())
            c.eq("rule %s mode" % r["name"], r["mode"], x["mode"])
            c.eq("rule %s action" % r["name"], r["action"], x["action"])
            c.eq("rule %s hits" % r["name"], int(m.sum()), x["hits"])
            c.eq("rule %s decided" % r["name"], int((decider == k).sum()), x["decided"])
            fh, lh = int((m & fraud).sum()), int((m & legit).sum())
            c.eq("rule %s fraud_hits" % r["name"], fh, x["fraud_hits"])
            c.eq("rule %s legit_hits" % r["name"], lh, x["legit_hits"])
            c.eq("rule %s precision" % r["name"], ratio(fh, fh + lh), x["precision"], 1e-12)
            mine = amounts([(cur[i], amt[i]) for i in range(N) if m[i] and fraud[i]], exps)
            c.eq("rule %s fraud_amount_caught" % r["name"], mine,
                 amounts_of(xraw["fraud_amount_caught"]))
        c.eq("rules.active_hits", hits["active"], R["active_hits"])
        c.eq("rules.shadow_hits", hits["shadow"], R["shadow_hits"])
    else:
        c.eq("rules", None, rep.get("rules"))
    if c.errors:
        for e in c.errors[:40]:
            print("btcheck: MISMATCH " + e)
        print("btcheck: %d of %d checks failed" % (len(c.errors), c.n))
        sys.exit(1)
    print("btcheck: OK %d checks, %d rows, %d labelled, roc_auc %s, pr_auc %s"
          % (c.n, N, int(lm.sum()), roc, ap))


if __name__ == "__main__":
    main()

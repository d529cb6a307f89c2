import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, "tests")
import conftest
import test_train

from xrerank_core import Reranker
from xrerank_core.train import average_models, train

DEV = sys.argv[1] if len(sys.argv) > 1 else "cuda"
tmp = Path("/tmp/smoke")
tmp.mkdir(exist_ok=True)
bert = str(conftest._save_bert(tmp / "bert"))
t = time.time()
runs = []
for fold in (0, 1):
    c = test_train._fruit_run(tmp, bert, f"r{fold}", seed=1 + fold, split_seed=5, dev_fold=fold)
    c = dataclasses.replace(c, device=DEV, bf16=DEV == "cuda", save_half=True)
    r = train(c)
    print("fold", fold, r.dev_first_stage, r.dev_best, r.dev_final, r.fusion_weight, flush=True)
    runs.append(c.output)
rec = average_models(runs, str(tmp / "avg"), device=DEV)
print("avg", rec.get("cross_fitted_folds"), json.loads((tmp / "avg" / "xrerank.json").read_text())["chosen_on"])
rr = Reranker(str(tmp / "avg"), device=DEV)
print(rr.rerank("about apple", ["this is pear", "this text is about apple and more"]))
print("smoke ok", round(time.time() - t, 1), "s")

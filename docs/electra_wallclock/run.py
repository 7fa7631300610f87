import json
import sys
import time
from pathlib import Path

sys.path.insert(0, "/work/main")
from tupe.cli import glue as sweep
from tupe.study import StudyPlan, pretrain_args
from tupe.train.trainer import main as train

out = Path("/work/main/runs/electra_wallclock")
data = Path("/work/main/runs/demo/data/bin")
plan = StudyPlan(schemes=["TUPE-R", "BERT-A"], lrs=[1e-3], updates=380, tokens_per_sample=128, batch=16,
                 validations=5, arch=["--arch", "bert_small"])
times = {}
for name in ("ELECTRA-TUPE-R", "ELECTRA-BERT-A"):
    t = time.time()
    assert train(pretrain_args(plan, data, name, 1e-3, 380, out / "pretrain" / name)) == 0
    times[name] = time.time() - t
    print(name, times[name], flush=True)
ckpts = {"TUPE-R (MLM)": Path("/work/main/runs/demo/pretrain/TUPE-R/lr0.001/checkpoint_last.pt"),
         "ELECTRA-TUPE-R": out / "pretrain" / "ELECTRA-TUPE-R" / "checkpoint_last.pt",
         "ELECTRA-BERT-A": out / "pretrain" / "ELECTRA-BERT-A" / "checkpoint_last.pt"}
for label, ck in ckpts.items():
    assert sweep.main(["--checkpoint", str(ck), "--data-dir", "/work/main/runs/demo/data/glue-bin", "--tasks", "SST-2",
                       "--lrs", "3e-4", "--seeds", "5", "--batch-size", "32", "--epochs", "1",
                       "--out", str(out / "finetune" / label.replace(" ", "_")), "--label", label]) == 0
(out / "times.json").write_text(json.dumps(times))
print("done", flush=True)

"""tupe-study end to end (--quick) on a preprocessed corpus and a labelled task."""

import json
import math

import pytest

from tupe.report import updates_to_reach
from tupe.study import main as study


def test_one_colour_per_scheme_across_plots():
    from tupe.config import SCHEMES
    from tupe.report import scheme_color

    assert scheme_color("TUPE-R") == scheme_color("ELECTRA-TUPE-R") == scheme_color("pretrain/TUPE-R/lr0.001") \
        == scheme_color("SST-2/TUPE-R/lr0.0003_seed1")
    assert len({scheme_color(name) for name in SCHEMES}) == len(SCHEMES)      # every scheme its own colour


def test_updates_to_reach_interpolates():
    curve = [(10, 9.0), (20, 7.0), (30, 6.0)]
    assert updates_to_reach(curve, 8.0) == pytest.approx(15.0)
    assert updates_to_reach(curve, 9.5) == 10.0
    assert updates_to_reach(curve, 5.0) is None


@pytest.fixture(scope="module")
def quick_study(data_dir, order_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    args = ["--corpus", str(data_dir), "--task", str(order_task / "SST-2-bin"), "--schemes",
            "TUPE-R,BERT-A,RoPE", "--lrs", "1e-3,3e-3", "--quick", "--updates", "24",
            "--eval-lengths", "64,128", "--out", str(out)]
    assert study(args) == 0
    return out, args


def test_quick_study_report_has_every_section(quick_study):
    out, _ = quick_study
    state = json.loads((out / "study.json").read_text())
    assert set(state["best_lr"]) == {"TUPE-R", "BERT-A", "RoPE"}
    assert len(state["runs"]) == 6 and all(r["final_valid_loss"] for r in state["runs"].values())
    for scheme, lr in state["best_lr"].items():      # the best LR has the lowest final validation loss
        losses = {k: r["final_valid_loss"] for k, r in state["runs"].items() if k.startswith(scheme + "/")}
        assert losses[f"{scheme}/lr{lr:g}"] == min(losses.values())
    text = (out / "report.md").read_text()
    for section in ("### Pretraining", "updates to reach BERT-A's final loss", "### Finetuning on SST-2",
                    "paired difference vs BERT-A", "seeds better than BERT-A", "Machine:", "## Final numbers"):
        assert section in text, section
    # a --quick study's throughput means nothing at that size: not reported in its table
    assert "tokens/s" not in text.split("### Pretraining")[1].split("###")[0]
    for section in ("### Beyond the trained length", "64 tokens (trained)", "128 tokens", "### Word order",
                    "absolute table: rows 64+ never trained", "rotations of positions never seen"):
        assert section in text, section
    for scheme, lr in state["best_lr"].items():   # at the trained length: the trainer's own final validation
        assert state["lengths"][scheme]["64"]["loss"] == pytest.approx(
            state["runs"][f"{scheme}/lr{lr:g}"]["final_valid_loss"], abs=1e-3)
        assert state["lengths"][scheme]["128"]["loss"] > 0
        probe = state["order_probe"][scheme]
        assert probe["intact"] == pytest.approx(state["lengths"][scheme]["64"]["loss"], abs=1e-9)
        # after 24 updates order is hardly used yet: the shuffled loss is a loss of the same size
        # (a model may move by less than float32's resolution of the summed loss: RoPE did here)
        assert math.isfinite(probe["shuffled"]) and probe["shuffled"] == pytest.approx(probe["intact"], rel=0.05)
    # the shuffle reached the evaluation: unshuffled, the two evaluations are bitwise equal (same
    # blocks, masks, seed); BERT-A's absolute table moves its loss most (5e-6 bits here)
    assert any(p["shuffled"] != p["intact"] for p in state["order_probe"].values()), state["order_probe"]
    # RoPE (no table: max_positions = the trained length) also with dynamic NTK scaling: the same
    # numbers up to the trained length, others past it
    scaled = state["lengths"]["RoPE + dynamic NTK"]
    assert scaled["64"]["loss"] == pytest.approx(state["lengths"]["RoPE"]["64"]["loss"], abs=1e-6)
    assert scaled["128"]["loss"] != pytest.approx(state["lengths"]["RoPE"]["128"]["loss"], abs=1e-6)
    assert "RoPE + dynamic NTK" in text and "RoPE's base raised past 64 tokens" in text
    # the schemes with tables also with their trained rows copied past the trained length (lengths.py):
    # within it the same numbers bit for bit, past it others (after 24 updates BERT-A's by 3e-7 bits only:
    # it hardly uses positions yet; the evaluation is deterministic, so any difference is the rows')
    for scheme in ("TUPE-R", "BERT-A"):
        copied = state["lengths"][f"{scheme} + copied rows"]
        assert copied["64"]["loss"] == state["lengths"][scheme]["64"]["loss"]
        assert copied["128"]["loss"] != state["lengths"][scheme]["128"]["loss"]
    assert "RoPE + copied rows" not in state["lengths"] and "TUPE-R + copied rows" in text
    assert "its table's rows past 64 replaced by copies of the trained ones" in text
    for png in ("study_valid_loss.png", "study_lr_grid.png", "study_lengths.png", "finetune_curves.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in text
    section = text.split("### Finetuning on SST-2")[1].split("\n\n")[1]
    rows = section.splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| TUPE-R", "| BERT-A", "| RoPE"]
    assert all(r.rstrip(" |").rsplit(" | ", 1)[1] in ("0/2", "1/2", "2/2") for r in rows if not r.startswith("| BERT-A"))


def test_a_resumed_study_computes_the_length_rows_it_lacks(quick_study):
    """A study made before a row kind existed ("+ copied rows") gains it when resumed; the rows it
    has are the same numbers (the evaluation is seeded), and nothing is trained again."""
    out, args = quick_study
    path = out / "study.json"
    before = json.loads(path.read_text())
    lacking = json.loads(path.read_text())
    del lacking["lengths"]["TUPE-R + copied rows"]
    path.write_text(json.dumps(lacking))
    assert study(args) == 0
    after = json.loads(path.read_text())
    assert after["lengths"] == before["lengths"] and after["runs"] == before["runs"]


def test_study_resumes_without_rerunning(quick_study, capsys):
    out, args = quick_study
    before = {p: p.stat().st_mtime for p in out.glob("pretrain/*/*/checkpoint_last.pt")}
    assert study(args) == 0
    assert "done before, skipped" in capsys.readouterr().err
    assert {p: p.stat().st_mtime for p in out.glob("pretrain/*/*/checkpoint_last.pt")} == before
    # resumed with another plan: refused (the finished runs would be reported under it), nothing changed
    state = (out / "study.json").read_text()
    other = [{"24": "30", "64,128": "64"}.get(a, a) for a in args]
    assert study(other) == 1
    err = capsys.readouterr().err
    assert "eval_lengths: [64, 128] then, [64] now; updates: 24 then, 30 now" in err and "Use another --out" in err
    assert (out / "study.json").read_text() == state
    assert {p: p.stat().st_mtime for p in out.glob("pretrain/*/*/checkpoint_last.pt")} == before


def test_bad_study_arguments(tmp_path, data_dir, capsys):
    assert study(["--corpus", str(data_dir), "--schemes", "TUPE-R,XYZ", "--updates", "5", "--out", str(tmp_path)]) == 1
    assert "unknown scheme 'XYZ'" in capsys.readouterr().err
    assert study(["--corpus", str(data_dir), "--schemes", "TUPE-R,RoPE", "--baseline", "BERT-A", "--updates", "5",
                  "--out", str(tmp_path)]) == 1
    assert "baseline 'BERT-A' is not among" in capsys.readouterr().err
    # no --baseline: BERT-A where it is a scheme, else the first scheme, said in one line; a missing
    # corpus is refused before the run folder exists
    for schemes, baseline in (("TUPE-R,RoPE", "TUPE-R"), ("TUPE-R,BERT-A", "BERT-A")):
        out = tmp_path / schemes
        assert study(["--corpus", str(tmp_path / "missing.txt"), "--schemes", schemes, "--updates", "5",
                      "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"baseline {baseline} (give --baseline" in err and "missing.txt: no such file" in err
        assert not out.exists()


@pytest.mark.slow      # 35-40 s: ELECTRA's study path; its parts are covered by tests/train/test_electra.py
def test_study_with_electra_beside_masked_lm(data_dir, order_task, tmp_path):
    out = tmp_path / "both"
    assert study(["--corpus", str(data_dir), "--task", str(order_task / "SST-2-bin"), "--schemes", "TUPE-R,BERT-A",
                  "--lrs", "1e-3", "--quick", "--updates", "16", "--ft-seeds", "1", "--objectives", "mlm,electra",
                  "--out", str(out)]) == 0
    state = json.loads((out / "study.json").read_text())
    assert set(state["best_lr"]) == {"TUPE-R", "BERT-A", "ELECTRA-TUPE-R", "ELECTRA-BERT-A"}
    metrics = out / "pretrain" / "ELECTRA-TUPE-R" / "lr0.001" / "metrics.jsonl"
    electra = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert any("disc_acc" in r for r in electra if r["type"] == "valid")
    text = (out / "report.md").read_text()
    assert "ELECTRA runs (ELECTRA-<scheme>)" in text and "| ELECTRA-TUPE-R |" in text
    final = text.split("## Final numbers")[1]
    assert "| ELECTRA-BERT-A |" in final and "(generator " in final
    section = text.split("### Finetuning on SST-2")[1].split("\n\n")[1]
    names = [r.split(" | ")[0] for r in section.splitlines()[2:]]
    assert names == ["| TUPE-R", "| BERT-A", "| ELECTRA-TUPE-R", "| ELECTRA-BERT-A"]   # side by side
    for r in section.splitlines()[2:]:
        if r.startswith("| ELECTRA-TUPE-R"):
            assert r.rstrip(" |").rsplit(" | ", 1)[1] in ("0/1", "1/1")   # paired with ELECTRA-BERT-A


def test_report_plots_say_what_they_draw(tmp_path, monkeypatch):
    """The pretraining plot shows the raw training-loss points and labels the smoothed line as a
    moving average; every axis has labels; one scheme keeps its colour in every plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.figure
    from matplotlib.axes import Axes

    from tupe.report import SMOOTHING, plots, scheme_color

    calls, labelled = [], []
    real_plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: calls.append((a, k)) or real_plot(ax, *a, **k))
    real_save = matplotlib.figure.Figure.savefig

    def check_labels(fig, *a, **k):
        labelled.extend((ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.axison)
        return real_save(fig, *a, **k)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", check_labels)
    train = [{"num_updates": u, "wall": u, "loss": 9 - u / 10, "lr": 1e-3} for u in range(1, 21)]
    valid = [{"num_updates": 10, "wall": 10, "loss": 8.5}, {"num_updates": 20, "wall": 20, "loss": 8.0}]
    finetune = {"SST-2/TUPE-R/lr1e-4_seed1": {"train": [], "valid": [{"num_updates": 5, "accuracy": 0.7}]}}
    files = plots(tmp_path, {"pretrain/TUPE-R/lr0.001": {"train": train, "valid": valid}}, finetune)
    assert "pretrain_loss_updates.png" in files and "finetune_curves.png" in files
    labels = [k.get("label", "") for _, k in calls]
    assert any(f"mean of last {SMOOTHING} log points" in x for x in labels), labels
    raw = [a for a, k in calls if a and len(a) > 1 and list(a[1]) == [r["loss"] for r in train]]
    assert raw, "the raw training-loss points are drawn"
    assert all(x and y for x, y in labelled), labelled
    assert ("finetuning updates", "validation accuracy") in labelled
    assert {k["color"] for _, k in calls if "color" in k} == {scheme_color("TUPE-R")}


@pytest.mark.parametrize("code,name", [(143, "SIGTERM"), (130, "SIGINT")])
def test_a_stopped_step_stops_the_study_with_its_code(data_dir, tmp_path, capsys, monkeypatch, code, name):
    """train.py (in-process) or tupe-glue stopped by a signal returns 128 + N: the study stops with
    that code and says so, rather than reporting a failure (exit 1) or going on."""
    import tupe.study

    calls = []
    monkeypatch.setattr(tupe.study, "train", lambda args: calls.append(args) or code)
    out = tmp_path / "run"
    assert study(["--corpus", str(data_dir), "--schemes", "TUPE-R,BERT-A", "--lrs", "1e-3", "--quick",
                  "--updates", "4", "--out", str(out)]) == code
    assert len(calls) == 1
    err = capsys.readouterr().err
    assert f"tupe-study: stopped by {name}; the finished runs are kept" in err and "error" not in err
    monkeypatch.setattr(tupe.study, "train", lambda args: 1)
    assert study(["--corpus", str(data_dir), "--schemes", "TUPE-R", "--lrs", "1e-3", "--quick", "--updates", "4",
                  "--out", str(out)]) == 1
    assert "tupe-study: error: pretraining TUPE-R/lr0.001 failed" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["study", "demo"])
def test_preprocessing_stopped_by_a_signal_stops_the_command_with_its_code(command, tmp_path, capsys, monkeypatch):
    """tupe-preprocess, run in-process by the study and the demo, returns 128 + N when a signal
    stops it: the command stops with that code and says so (the study reported a failure, the
    demo returned 1), and a real failure is still a failure."""
    import tupe.demo
    import tupe.study
    from tupe.demo import main as demo

    corpus = tmp_path / "c.txt"
    corpus.write_text("the river and the city\n" * 20)
    for code, said in ((143, "stopped by SIGTERM; the finished runs are kept"), (1, None)):
        monkeypatch.setattr(tupe.study if command == "study" else tupe.demo, "preprocess", lambda argv, c=code: c)
        argv = ["--quick", "--out", str(tmp_path / f"{command}{code}")]
        got = study(["--corpus", str(corpus), *argv]) if command == "study" else demo(argv)
        assert got == code
        err = capsys.readouterr().err
        # (a failure is said by tupe-preprocess itself, mocked here)
        assert (said in err and "error" not in err) if said else "stopped by SIG" not in err


def test_a_study_folder_preprocessed_from_another_corpus_is_refused(tmp_path):
    """OUT/data/bin is reused only for the corpus it was preprocessed from."""
    from tupe.study import prepare_corpus

    bin_dir = tmp_path / "out" / "data" / "bin"
    bin_dir.mkdir(parents=True)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    (bin_dir / "preprocess.json").write_text(json.dumps({"inputs": [str(first)]}))
    assert prepare_corpus(first, tmp_path / "out", 1, []) == bin_dir                 # its own corpus: reused
    with pytest.raises(ValueError, match=f"was preprocessed from {first}, not {second}"):
        prepare_corpus(second, tmp_path / "out", 1, [])

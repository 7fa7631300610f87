"""transformers tooling on exported TUPE models, with real runs on data the tests make:
tupe-convert --hf, pipelines, Trainer (examples/hf_finetune.py), LoRA with peft, ONNX."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tupe
from tupe.cli.convert import main as convert

hf = pytest.importorskip("tupe.hf")
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pretrained_dir(pretrained, data_dir, tmp_path_factory):
    """The tiny pretraining run's checkpoint with its dict.txt and bpe-code beside it."""
    d = tmp_path_factory.mktemp("pre_with_vocab")
    shutil.copyfile(pretrained, d / "checkpoint_last.pt")
    for name in ("dict.txt", "bpe-code"):
        shutil.copyfile(data_dir / name, d / name)
    return d


@pytest.fixture(scope="module")
def exported(pretrained_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "tupe-r"
    assert convert([str(pretrained_dir), str(out), "--hf"]) == 0
    return out


@pytest.fixture(scope="module")
def topic_task(tmp_path_factory):
    """SST-2-layout TSVs whose label is the topic word in the sentence ("river" or "city", among
    filler words): a task a tiny model learns in a few epochs (the word-order task of
    tests/finetune needs hundreds of updates before it takes off)."""
    import random

    from tests.finetune.fixtures import FILLER
    from tests.preprocess.glue_data import write

    rng = random.Random(5)
    root = tmp_path_factory.mktemp("topic")
    for split, n in (("train", 400), ("dev", 200)):
        rows = []
        for _ in range(n):
            words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
            label = rng.random() < 0.5
            words.insert(rng.randint(0, len(words)), "river" if label else "city")
            rows.append((" ".join(words), int(label)))
        write(root / f"{split}.tsv", [("sentence", "label")] + rows)
    return root


@pytest.fixture(scope="module")
def finetuned_hf(exported, topic_task, tmp_path_factory):
    """examples/hf_finetune.py on the topic task."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import hf_finetune
    finally:
        sys.path.pop(0)
    out = tmp_path_factory.mktemp("hfft") / "run"
    summary = hf_finetune.main(["--model", str(exported), "--train", str(topic_task / "train.tsv"),
                                "--valid", str(topic_task / "dev.tsv"), "--text-columns", "sentence",
                                "--label-column", "label", "--out", str(out), "--epochs", "4", "--lr", "3e-3",
                                "--seed", "1"])
    return out, summary


def test_finetuning_example_resizes_for_longer_rows(exported, topic_task, tmp_path):
    """examples/hf_finetune.py --max-length past the model's positions: refused, naming
    --position-init; with it the tables are resized and the saved model and tokenizer say so."""
    import json

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import hf_finetune
    finally:
        sys.path.pop(0)
    common = ["--model", str(exported), "--train", str(topic_task / "train.tsv"), "--valid", str(topic_task / "dev.tsv"),
              "--text-columns", "sentence", "--label-column", "label", "--out", str(tmp_path / "o"), "--epochs", "1"]
    longest = json.loads((exported / "config.json").read_text())["max_positions"]
    with pytest.raises(SystemExit, match=f"the model covers {longest} positions \\(add --position-init copy"):
        hf_finetune.main([*common, "--max-length", str(longest + 16)])
    with pytest.raises(SystemExit, match="--position-init: it resizes the model to a --max-length past"):
        hf_finetune.main([*common, "--position-init", "copy"])
    hf_finetune.main([*common, "--max-length", str(longest + 16), "--position-init", "copy"])
    assert json.loads((tmp_path / "o" / "config.json").read_text())["max_positions"] == longest + 16
    assert json.loads((tmp_path / "o" / "tokenizer_config.json").read_text())["model_max_length"] == longest + 16


def test_finetuning_example_names_a_malformed_row(tmp_path):
    """examples/hf_finetune.py: a row with a field too few or too many is an error naming the
    file and line (csv.DictReader would read None or put the extra field aside, silently)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import hf_finetune
    finally:
        sys.path.pop(0)
    good = "sentence\tlabel\na tree\t1\n"
    for bad in ("broken row\n", "a tool\t0\textra\n"):
        (tmp_path / "t.tsv").write_text(good + bad + "a cat\t1\n")
        with pytest.raises(SystemExit, match=r"t\.tsv:3: expected 2 tab-separated fields"):
            hf_finetune.read_tsv(tmp_path / "t.tsv", ["sentence"], "label")
    (tmp_path / "t.tsv").write_text(good)
    assert hf_finetune.read_tsv(tmp_path / "t.tsv", ["sentence"], "label") == ([["a tree"]], ["1"])


def test_finetuning_example_cuts_rows_to_the_models_positions(exported, topic_task, tmp_path):
    """Its --max-length defaulted to 512, past a smaller model's positional tables: a long row
    then failed inside the model mid-run. Now the model's max_positions is the default and the
    most."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import hf_finetune
    finally:
        sys.path.pop(0)
    tok = AutoTokenizer.from_pretrained(exported)
    positions = AutoConfig.from_pretrained(exported).max_positions
    assert tok.model_max_length == positions
    data = hf_finetune.TextDataset("t.tsv", tok, [["river " * 3 * positions]], ["a"], {"a": 0}, positions)
    assert len(data[0]["input_ids"]) == positions
    with pytest.raises(SystemExit, match=f"--max-length {positions + 1}: the model covers {positions} positions"):
        hf_finetune.main(["--model", str(exported), "--train", str(topic_task / "train.tsv"), "--valid",
                          str(topic_task / "dev.tsv"), "--text-columns", "sentence", "--label-column", "label",
                          "--out", str(tmp_path / "o"), "--max-length", str(positions + 1)])
    with pytest.raises(SystemExit, match=r"t\.tsv:2: label 'b' does not occur in the training file"):
        hf_finetune.TextDataset("t.tsv", tok, [["a river"]], ["b"], {"a": 0}, positions)


def task_batches(exported, task_dir, batch_size=16):
    """A task's train/dev TSVs as tokenized, padded batches with labels."""
    import csv

    tok = AutoTokenizer.from_pretrained(exported)
    out = []
    for split in ("train", "dev"):
        with open(task_dir / f"{split}.tsv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        batches = []
        for i in range(0, len(rows), batch_size):
            chunk = rows[i: i + batch_size]
            enc = tok([r["sentence"] for r in chunk], padding=True, return_tensors="pt")
            enc["labels"] = torch.tensor([int(r["label"]) for r in chunk])
            batches.append(dict(enc))
        out.append(batches)
    return out


@torch.no_grad()
def accuracy(model, batches):
    model.eval()
    hits = n = 0
    for b in batches:
        hits += int((model(**b).logits.argmax(-1) == b["labels"]).sum())
        n += len(b["labels"])
    model.train()
    return hits / n


def varied_batches(tok):
    texts = ["the river", "a city of the river and the city of a river", "city", "the of and to in a is that"]
    yield dict(tok(texts, padding=True, return_tensors="pt"))
    yield dict(tok(texts[1:2], return_tensors="pt"))
    yield dict(tok([" ".join(texts)] * 5, texts[:1] * 5, padding=True, return_tensors="pt"))


def test_exported_folder_layout_and_parity(exported, pretrained_dir):
    files = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "dict.txt", "bpe-code", "tokenizer_config.json"} <= files
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "tupe" and config["architectures"] == ["TupeForMaskedLM"]
    native = tupe.load_model(pretrained_dir)
    model = AutoModelForMaskedLM.from_pretrained(exported).eval()
    tok = AutoTokenizer.from_pretrained(exported)
    batch = tok(["the river and the city", "a city"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = native(batch["input_ids"])
        got = model(**batch).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-6, rtol=0)
    # and back: load_model reads the transformers folder, tupe-convert writes the original layout
    again = tupe.load_model(exported)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), native.state_dict().values()))


def test_fill_mask_pipeline_matches_the_hub(exported, pretrained_dir):
    fill = pipeline("fill-mask", model=str(exported), top_k=3)
    hub = tupe.from_pretrained(pretrained_dir)
    text = "the river <mask> the city"
    got = fill(text)
    want = hub.fill_mask(text, topk=3)
    assert [r["token_str"].strip() for r in got] == [w[2] for w in want]
    for r, w in zip(got, want):
        assert r["score"] == pytest.approx(w[1], abs=1e-6)


def test_convert_a_finetuned_training_run(order_task, pretrained, data_dir, tmp_path, capsys):
    """A native finetuning run dir (checkpoint + labels.json) -> AutoModelForSequenceClassification
    with the original's class logits and label words; text-classification pipeline = tupe hub."""
    from tests.finetune.test_finetune import finetune_command, run

    run_dir = tmp_path / "ft"
    proc = run(finetune_command(order_task / "SST-2-bin", pretrained, run_dir, epochs=1).replace(
        "--no-best-checkpoints ", "").replace("--no-last-checkpoints ", ""))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("dict.txt", "bpe-code"):
        shutil.copyfile(data_dir / name, run_dir / name)
    out = tmp_path / "hf"
    assert convert([str(run_dir), str(out), "--hf"]) == 0
    config = json.loads((out / "config.json").read_text())
    words = json.loads((run_dir / "labels.json").read_text())["sentence_classification_head"]
    assert config["architectures"] == ["TupeForSequenceClassification"]
    assert [config["id2label"][str(i)] for i in range(2)] == words
    # finetuned on single sentences: the folder says so (config and labels.json), and the native
    # tools on it refuse a pair as they do on the run itself (the folder used to lose this)
    assert config["task_inputs"] == 1
    assert json.loads((out / "labels.json").read_text())["inputs"] == {"sentence_classification_head": 1}
    pair = tmp_path / "pair.tsv"
    pair.write_text("the river city\tcity river\n")
    from tupe.cli.predict import main as predict
    for source in (run_dir, out):
        assert predict(["--checkpoint", str(source), "--input", str(pair)]) == 1
        assert "finetuned on single sentences" in capsys.readouterr().err
    native = tupe.load_model(run_dir)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    sentences = ["the river city of a", "he city river was", "city river"]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = torch.cat([native(tok(s, return_tensors="pt")["input_ids"],
                                 classification_head_name="sentence_classification_head") for s in sentences])
        got = model(**batch).logits
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    classify = pipeline("text-classification", model=str(out))
    hub = tupe.from_pretrained(run_dir)
    for s, r in zip(sentences, classify(sentences)):
        word, prob = hub.predict_label("sentence_classification_head", s)
        assert r["label"] == word and r["score"] == pytest.approx(prob, abs=1e-6)
    # docs/huggingface.md's length-sorted batches, run as written: each row's own probabilities
    from tests.test_docs import blocks
    (_, code), = blocks((Path(__file__).parents[2] / "docs" / "huggingface.md").read_text(), "hf-batches")
    texts = [" ".join(["the river city of a"] * (1 + i % 7)) + (" was" * (i % 3)) for i in range(40)]
    scope = {"texts": texts, "tok": tok, "model": model}
    exec(code, scope)
    want = hub.predict_batch("sentence_classification_head", texts).exp()
    torch.testing.assert_close(torch.stack(scope["results"]), want, atol=1e-5, rtol=0)
    # label words from the task's label dictionary give the same names
    assert convert([str(run_dir), str(tmp_path / "hf2"), "--hf", "--label-dict",
                    str(order_task / "SST-2-bin" / "label" / "dict.txt")]) == 0
    assert json.loads((tmp_path / "hf2" / "config.json").read_text())["id2label"] == config["id2label"]
    # and the way back to the original layout
    assert convert([str(out), str(tmp_path / "back.pt")]) == 0
    back = tupe.load_model(tmp_path / "back.pt")
    assert back.head_sizes == {"sentence_classification_head": 2}


def test_convert_keeps_a_regression_heads_score_range(data_dir, tmp_path):
    """A regression head finetuned on scores in [1, 3] (tupe-preprocess task --regression 1 3; the
    run's labels.json) -> --hf: config.task_score_range and labels.json keep the range, so the hub
    and tupe-predict on the folder map values back as on the run (before: to STS-B's 0..5)."""
    from tests.conftest import tiny_config
    from tupe.checkpoint import Vocabulary
    from tupe.data.dictionary import Dictionary, model_vocab_size

    d = Dictionary.load(data_dir / "dict.txt")
    model = tupe.TupeModel(tiny_config(vocab_size=model_vocab_size(d)))
    model.register_classification_head("sentence_classification_head", 1)
    run = tmp_path / "run"
    tupe.save_pretrained(model, run, vocabulary=Vocabulary(d, data_dir / "bpe-code", False))
    (run / "labels.json").write_text(json.dumps({"sentence_classification_head": [],
                                                 "score_ranges": {"sentence_classification_head": [1, 3]}}))
    assert convert([str(run), str(tmp_path / "hf"), "--hf"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["task_score_range"] == [1.0, 3.0]
    (tmp_path / "hf" / "labels.json").unlink()            # as transformers.Trainer saves it: the config alone
    ours, theirs = tupe.from_pretrained(run), tupe.from_pretrained(tmp_path / "hf")
    assert theirs.labels["score_ranges"] == {"sentence_classification_head": [1.0, 3.0]}
    for hub in (ours, theirs):
        value = hub.predict("sentence_classification_head", "a river")
        assert hub.labels_of("sentence_classification_head", value)[0][0] == f"{1 + 2 * value.item():.4f}"


def test_trainer_finetuning_example(finetuned_hf, topic_task):
    out, summary = finetuned_hf
    # class ids follow the project's one rule (tupe-preprocess task's label dictionary order)
    import csv

    from tupe.preprocess.glue import build_label_dictionary
    with open(topic_task / "train.tsv", encoding="utf-8") as f:
        train_labels = [r["label"] for r in csv.DictReader(f, delimiter="\t")]
    d = build_label_dictionary(train_labels)
    id2label = json.loads((out / "config.json").read_text())["id2label"]
    assert [id2label[str(i)] for i in range(len(id2label))] == d.symbols[d.nspecial:d.nspecial + len(id2label)]
    assert summary["last_loss"] < summary["first_loss"]
    assert summary["accuracy"] >= summary["majority"] + 0.15, summary     # majority ~0.5
    assert summary["accuracy"] > summary["accuracy_before"]


def test_hf_finetuned_model_goes_through_tupe_tools(finetuned_hf, tmp_path):
    """A model finetuned with transformers, read by tupe.load_model / tupe-predict."""
    out, summary = finetuned_hf
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    native = tupe.load_model(out)
    assert native.head_sizes == {"sentence_classification_head": 2}
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        saved_lm_head = any(k.startswith("lm_head.") for k in f.keys())
    assert native.lm_head_trained is saved_lm_head          # a head made new on loading is known as such
    batch = tok(["the river city", "a city river is"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**batch).logits
        got = torch.cat([native(tok(s, return_tensors="pt")["input_ids"], classification_head_name="sentence_classification_head")
                         for s in ("the river city", "a city river is")])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    from tupe.cli.predict import main as predict

    src = tmp_path / "in.tsv"
    src.write_text("the river city\na city river is\n")
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert predict(["--checkpoint", str(out), "--input", str(src), "--cpu"]) == 0
    labels = [line.split("\t")[0] for line in buf.getvalue().splitlines()]
    assert labels == [model.config.id2label[int(i)] for i in want.argmax(-1)]


def test_lora_trains_only_adapters_and_improves(exported, topic_task, tmp_path):
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import get_linear_schedule_with_warmup

    train, valid = task_batches(exported, topic_task)
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(exported, num_labels=2)
    frozen = {k: v.clone() for k, v in base.state_dict().items() if not k.startswith("classifier.")}
    acc_frozen = accuracy(base, valid)
    r = 4
    model = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=hf.LORA_TARGET_MODULES))
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    lora = {n: k for n, k in trainable.items() if "lora_" in n}
    rest = {n for n in trainable if "lora_" not in n}
    assert rest and all(".classifier." in n for n in rest)         # plus the new task head (modules_to_save)
    cfg = base.config
    C, F_, L = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.encoder_layers
    per_layer = r * ((C + 3 * C) + (C + C) + (C + F_) + (F_ + C))  # in_proj (fused q/k/v), out_proj, fc1, fc2
    # (the classifier's own out_proj is a target name too: LoRA on the trainable head copy)
    assert sum(k for n, k in lora.items() if ".encoder." in n) == L * per_layer
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    epochs = 4
    schedule = get_linear_schedule_with_warmup(opt, len(train) // 4, epochs * len(train))
    model.train()
    losses = []
    for _ in range(epochs):
        for batch in train:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            schedule.step()
            opt.zero_grad()
            losses.append(loss.item())
    assert sum(losses[-10:]) < sum(losses[:10])
    acc_lora = accuracy(model, valid)
    assert acc_lora >= acc_frozen + 0.15 and acc_lora >= 0.7, (acc_frozen, acc_lora)
    merged_base = {k.replace("base_model.model.", ""): v for k, v in model.state_dict().items()}
    for k, v in frozen.items():   # the pretrained weights did not move
        name = k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(merged_base.get(name, merged_base.get(k)), v), k
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    fresh = AutoModelForSequenceClassification.from_pretrained(exported, num_labels=2)
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    model.eval()
    with torch.no_grad():
        b = valid[0]
        torch.testing.assert_close(reloaded(**b).logits, model(**b).logits, atol=1e-6, rtol=0)
    # the adapter folder alone is not a model: every tupe command says how to merge it; the merged
    # folder is an ordinary one (tupe.load_model reads it, same logits)
    from tupe.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="is a PEFT adapter .*merge_and_unload"):
        tupe.load_model(tmp_path / "adapter")
    reloaded.merge_and_unload().save_pretrained(tmp_path / "merged")
    native = tupe.load_model(tmp_path / "merged")
    with torch.no_grad():
        want = model(**b).logits
        got = native(b["input_ids"].masked_fill(b["attention_mask"] == 0, 1), classification_head_name=native.DEFAULT_HEAD)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["base", "classifier"])
def test_onnx_export_runs_in_onnxruntime(exported, kind, tmp_path):
    import onnxruntime as ort

    from tupe.hf.onnx import export_onnx

    cls = hf.TupeHfModel if kind == "base" else hf.TupeForSequenceClassification
    model = cls.from_pretrained(exported).eval()
    path = export_onnx(model, tmp_path / f"{kind}.onnx")
    session = ort.InferenceSession(str(path))
    tok = AutoTokenizer.from_pretrained(exported)
    for batch in varied_batches(tok):   # lengths and batch sizes other than the export's
        with torch.no_grad():
            want = model(**batch)[0]
        got = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        assert got.shape == tuple(want.shape)
        assert abs(got - want.numpy()).max() <= 1e-4
    # The exported graph reads positions from the mask too: a left-padded batch gives, for every
    # real token, what the same rows right-padded give.
    texts = ["the river", "a city of the river and the city of a river", "city"]
    right = tok(texts, padding=True, return_tensors="pt")
    tok.padding_side = "left"
    left = tok(texts, padding=True, return_tensors="pt")
    got_right, got_left = (session.run(None, {k: v.numpy() for k, v in b.items()})[0] for b in (right, left))
    for i in range(len(texts)):
        n = int(right["attention_mask"][i].sum())
        real_right = got_right[i, :n] if kind == "base" else got_right[i]
        real_left = got_left[i, -n:] if kind == "base" else got_left[i]
        assert abs(real_right - real_left).max() <= 1e-4, i
    # past max_positions the graph fails inside onnxruntime (no message an ONNX graph could carry:
    # docs/huggingface.md says to cut inputs to the tokenizer's model_max_length)
    limit = model.config.max_positions
    assert tok.model_max_length == limit
    ids = np.full((1, limit + 1), 5, dtype=np.int64)
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    ok = session.run(None, {"input_ids": ids[:, :limit], "attention_mask": np.ones_like(ids[:, :limit])})[0]
    assert np.isfinite(ok).all()


def test_restore_file_reads_a_transformers_folder(exported, order_task, tmp_path):
    """train.py --restore-file HF_FOLDER: finetuning starts from the exported weights."""
    from tests.finetune.test_finetune import finetune_command, run

    proc = run(finetune_command(order_task / "SST-2-bin", exported, tmp_path / "ft", epochs=1))
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "new classification head(s) ['sentence_classification_head']" in log, log[-2000:]


@pytest.mark.slow      # ~12 s: tupe-glue runs train.py --restore-file, whose HF-folder reading is tested just above
def test_tupe_glue_takes_a_transformers_folder(exported, order_task, tmp_path):
    from tupe.cli import glue as sweep

    out = tmp_path / "runs"
    assert sweep.main(["--checkpoint", str(exported), "--data-dir", str(order_task), "--tasks", "SST-2",
                       "--lrs", "5e-3", "--seeds", "1", "--epochs", "1", "--out", str(out),
                       "--extra=--cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["label"] == "TUPE-R" and "SST-2" in results["tasks"]
    assert (out / "SST-2" / "best" / "checkpoint_best.pt").is_file()


def test_convert_original_file_and_own_format(tmp_path):
    """The original fairseq file and the own format give the same transformers folder, and it
    reproduces the original code's recorded outputs."""
    import numpy as np
    from safetensors.torch import load_file

    from tests.conftest import FIXTURE

    assert convert([str(FIXTURE / "checkpoint.pt"), str(tmp_path / "a"), "--hf"]) == 0
    assert convert([str(FIXTURE / "checkpoint.pt"), str(tmp_path / "own")]) == 0
    assert convert([str(tmp_path / "own"), str(tmp_path / "b"), "--hf"]) == 0
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "a").eval()
    expected = np.load(FIXTURE / "expected.npz")
    tokens = torch.from_numpy(expected["tokens_1"]).long()
    real = tokens.ne(1)
    with torch.no_grad():
        logits = model(tokens, attention_mask=real.long()).logits
    torch.testing.assert_close(logits[real], torch.from_numpy(expected["logits_1"])[real], atol=1e-5, rtol=0)

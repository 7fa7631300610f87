"""benchmarks/train_bench.py's profile summary: on CUDA torch lists each kernel twice (as its
own event and in the launching operator's self device time); the kernels' total must count it
once, or a host-bound step would look device-bound."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.autograd import DeviceType


def load_bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "train_bench.py"
    spec = importlib.util.spec_from_file_location("train_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(key, device_type, self_device_us=0.0, self_cpu_us=0.0, count=1):
    return SimpleNamespace(key=key, device_type=device_type, self_device_time_total=self_device_us,
                           self_cpu_time_total=self_cpu_us, count=count)


def test_cuda_kernels_counted_once():
    bench = load_bench()
    events = [event("aten::mm", DeviceType.CPU, 600.0, 50.0, 3),       # launched the gemm kernels
              event("aten::add_", DeviceType.CPU, 100.0, 20.0, 2),
              event("aten::view", DeviceType.CPU, 0.0, 5.0, 9),        # no kernel
              event("sm90_gemm_bf16", DeviceType.CUDA, 600.0, 0.0, 3),
              event("elementwise_add", DeviceType.CUDA, 100.0, 0.0, 2)]
    ops = bench.summarise_profile(events, cuda=True)
    assert ops[0] == {"op": "(all kernels)", "self_s": 0.0007, "share": 1.0, "calls": 5}
    assert [o["op"] for o in ops[1:]] == ["aten::mm", "aten::add_"]
    assert [o["share"] for o in ops[1:]] == [round(600 / 700, 4), round(100 / 700, 4)]


def test_cpu_profile_of_a_real_step():
    bench = load_bench()
    from torch.profiler import ProfilerActivity, profile

    a = torch.randn(256, 256, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        (a @ a).relu().sum().backward()
    ops = bench.summarise_profile(prof.key_averages(), cuda=False, top=100)
    names = [o["op"] for o in ops]
    assert "aten::mm" in names and all(o["self_s"] >= 0 for o in ops)
    assert abs(sum(o["share"] for o in ops) - 1.0) < 1e-2          # every op once: shares add up
    assert ops == sorted(ops, key=lambda o: -o["self_s"])

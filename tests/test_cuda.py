"""CUDA-only checks (skipped without a GPU; run on a lent GPU machine): AMP, snapshots and the
range test's exact restoration on the device, tensor learning rates in fused optimizers, and
class labels out of range said in one line, not as a device-side assert."""

import pytest
import torch

from disciplined import HyperScheduler, lr_range_test
from disciplined import schedules as S
from disciplined.engine import Trainer, build_optimizer, steps_per_epoch
from disciplined.tasks import TaskError, caffe_lenet, digits_cnn, digits_datasets

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DATA = digits_datasets()


def trainer(amp, seed=0):
    torch.manual_seed(seed)
    model = digits_cnn()
    opt = build_optimizer("sgd", model, lr=0.1)
    total = steps_per_epoch(DATA[0], 64) * 5
    t = Trainer(model, opt, torch.nn.CrossEntropyLoss(), DATA[0], DATA[1], batch_size=64,
                amp=amp, device="cuda", seed=seed,
                scheduler=HyperScheduler(opt, lr=S.one_cycle(total, 0.3),
                                         momentum=S.one_cycle_momentum(total)))
    return t, total


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_one_cycle_trains_on_cuda_with_and_without_amp(amp):
    t, total = trainer(amp)
    h = t.run(steps=total)
    assert next(t.model.parameters()).is_cuda
    assert h.val_metric[-1] > 0.93, h.val_metric
    if amp == "fp16":
        assert t.scaler is not None and t.scaler.get_scale() > 0


def test_snapshot_restore_on_cuda_continues_bit_for_bit():
    t, _ = trainer("fp16")
    t.run(steps=30)
    snap = t.snapshot()
    t.run(steps=30)
    expected = [p.detach().clone() for p in t.model.parameters()]
    fresh, _ = trainer("fp16")
    fresh.restore(snap)
    fresh.run(steps=30)
    assert all(torch.equal(a, b) for a, b in zip(expected, fresh.model.parameters(),
                                                 strict=True))


def test_range_test_on_cuda_restores_exactly_and_leaves_the_model_on_cuda():
    torch.manual_seed(0)
    model = caffe_lenet().cuda()
    opt = build_optimizer("sgd", model, lr=0.01)
    x = torch.rand(2048, 1, 28, 28)
    y = torch.randint(0, 10, (2048,))
    data = torch.utils.data.TensorDataset(x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cuda_rng = torch.cuda.get_rng_state()
    result = lr_range_test(model, opt, torch.nn.CrossEntropyLoss(), data, val_data=data,
                           start_lr=1e-5, end_lr=10, num_steps=80, batch_size=128)
    assert result.runs[0].lr and next(model.parameters()).is_cuda
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(cuda_rng, torch.cuda.get_rng_state())


def test_tensor_lr_in_a_fused_adamw_is_scheduled_in_place():
    model = torch.nn.Linear(16, 4).cuda()
    lr = torch.tensor(0.01, device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    hs = HyperScheduler(opt, lr=S.one_cycle(20, 0.1), momentum=S.one_cycle_momentum(20))
    for k in range(20):
        assert opt.param_groups[0]["lr"].item() == pytest.approx(S.one_cycle(20, 0.1)(k))
        model(torch.randn(8, 16, device="cuda")).sum().backward()
        opt.step()
        opt.zero_grad()
        hs.step()


class _LateLabel(torch.utils.data.Dataset):
    """Digits as a plain Dataset whose labels from sample `at` on are `label`: read batch by
    batch, on the host, as they train."""

    def __init__(self, data, at, label):
        self.x, self.y = data.tensors
        self.at, self.label = at, label

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.label if i >= self.at else int(self.y[i])


@pytest.mark.parametrize("where", ["training", "validation", "in-memory"])
def test_a_label_out_of_range_is_one_line_and_the_gpu_stays_usable(where):
    """Without the host-side check this is a device-side assert, after which every later
    CUDA call in the process fails (it did to 28 tests of one worker)."""
    train, val = DATA
    if where == "training":
        train = _LateLabel(train, 600, 12)
    elif where == "validation":
        val = _LateLabel(val, 300, 12)
    else:
        x, y = train.tensors
        train = torch.utils.data.TensorDataset(x, torch.where(torch.arange(len(y)) == 900, 12, y))
    torch.manual_seed(0)
    model = digits_cnn()
    t = Trainer(model, build_optimizer("sgd", model, lr=0.05), torch.nn.CrossEntropyLoss(),
                train, val, batch_size=64, device="cuda", eval_every=10)
    said = {"training": r"^a training batch \(at training step 0\) holds class 12, but the "
                        r"model scores 10 classes",
            "validation": r"^the validation targets hold class 12 \(sample 300\), but the "
                          r"model scores 10 classes",
            "in-memory": r"^the training targets hold class 12 \(sample 900\)"}
    with pytest.raises(TaskError, match=said[where]):
        t.run(steps=30)
    # the device still works: no assert was ever raised on it
    assert float((torch.ones(4, device="cuda") * 2).sum()) == 8.0
    torch.cuda.synchronize()

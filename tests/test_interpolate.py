"""The loss along a line between two solutions, on two real digits models."""

import pytest
import torch

from disciplined.engine import Trainer
from disciplined.interpolate import interpolate
from disciplined.plot import plot_interpolation
from disciplined.tasks import digits_datasets, load_task
from disciplined.trials import Budget, TrialSpec, train


@pytest.fixture(scope="module")
def two_solutions():
    task = load_task("digits")
    spec = TrialSpec("digits", max_lr=0.3, budget=Budget(epochs=3))
    a = train(spec, task=task)[1].state_dict()
    b = train(spec.with_(seed=1), task=task)[1].state_dict()
    return task, a, b


def test_the_ends_are_the_solutions_and_the_middle_is_a_barrier(two_solutions, tmp_path):
    task, a, b = two_solutions
    result = interpolate(a, b, task.model, task.datasets(), alphas=[-0.5, 0.0, 0.5, 1.0, 1.5])
    own = {}
    for alpha, state in ((1.0, a), (0.0, b)):
        model = task.model()
        model.load_state_dict(state)
        model.eval()
        x, y = task.datasets()[1].tensors
        with torch.no_grad():
            own[alpha] = torch.nn.functional.cross_entropy(model(x), y).item()
    assert result.val_loss[3] == pytest.approx(own[1.0], rel=1e-5)
    assert result.val_loss[1] == pytest.approx(own[0.0], rel=1e-5)
    # two independently trained nets: the straight line between them rises in the middle
    assert result.val_loss[2] > max(own.values())
    assert result.val_loss[0] > own[0.0] and result.val_loss[4] > own[1.0]
    assert plot_interpolation(result, tmp_path / "i.png").stat().st_size > 0


def bn_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32),
                               torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def trained_bn_model(seed, data):
    torch.manual_seed(seed)
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    Trainer(model, opt, torch.nn.CrossEntropyLoss(), data[0], batch_size=64, seed=seed,
            device="cpu").run(epochs=3)
    return model.state_dict()


def test_batchnorm_statistics_are_recomputed_on_request():
    data = digits_datasets()
    a, b = trained_bn_model(0, data), trained_bn_model(1, data)
    kept = interpolate(a, b, bn_model, data, alphas=[0.0, 0.5])
    fresh = interpolate(a, b, bn_model, data, alphas=[0.0, 0.5], recompute_bn=True)
    assert fresh.recompute_bn and not kept.recompute_bn
    # the blended running statistics are wrong for the blended weights; fresh ones fit them
    assert fresh.val_loss[1] < kept.val_loss[1]
    assert fresh.val_loss[0] == pytest.approx(kept.val_loss[0], rel=0.2)


def test_states_of_different_models_are_refused():
    with pytest.raises(ValueError, match="different models"):
        interpolate({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, bn_model, digits_datasets())

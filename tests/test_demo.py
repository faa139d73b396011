"""A short real training on the bundled digits: 1cycle against a constant LR at the same max."""

from disciplined import schedules as S
from disciplined.demo import load_digits_split, steps_per_epoch, train_digits

EPOCHS = 8
MAX_LR = 0.3


def test_one_cycle_beats_a_constant_lr_of_the_same_max_on_digits():
    data = load_digits_split()
    total = steps_per_epoch(data) * EPOCHS
    cycled = train_digits(S.one_cycle(total, MAX_LR), S.one_cycle_momentum(total),
                          epochs=EPOCHS, data=data)
    constant = train_digits(S.constant(MAX_LR), S.constant(0.9), epochs=EPOCHS, data=data)
    assert cycled.steps == constant.steps == total
    # Measured: ~98% against ~87% (seed 0; 97.8-98.6% vs 87-90% over seeds 0-2).
    assert cycled.final_accuracy >= 0.95
    assert cycled.final_accuracy > constant.final_accuracy + 0.03
    assert cycled.val_loss[-1] < constant.val_loss[-1]


def test_same_seed_same_numbers():
    data = load_digits_split()
    runs = [train_digits(S.constant(0.05), epochs=2, data=data, seed=3) for _ in range(2)]
    assert runs[0].val_loss == runs[1].val_loss

"""Trainer(teacher=...): knowledge distillation from trained networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnet import Trainer, build_mlp


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _teacher(tiny_images, seed=0):
    """A small fcnet network trained on the tiny images (logits out)."""
    torch.manual_seed(seed)
    teacher = build_mlp([784, 32, 10], dropout=0.2, input_norm=(0.5, 0.5))
    Trainer(teacher, lr=3e-3, epochs=3, batch_size=64, seed=seed, progress=False).fit(
        tiny_images)
    return teacher


def _student(seed=1, dropout=0.1):
    torch.manual_seed(seed)
    return build_mlp([784, 16, 10], dropout=dropout, input_norm=(0.5, 0.5))


def test_cached_teacher_probabilities_match_those_computed_per_batch(tiny_images):
    # Without augmentation the teacher's probabilities are computed once and indexed by
    # each batch's samples; an augmentation that changes nothing forces the per-batch
    # path. Both must give the same training, last (smaller) batch included.
    teacher = _teacher(tiny_images)
    runs = []
    for augment in (None, lambda x, g: x.clone()):
        student = _student()
        trainer = Trainer(student, lr=3e-3, epochs=2, batch_size=48, seed=3, progress=False,
                          teacher=teacher, distill_weight=0.7, distill_temperature=3.0,
                          augment=augment)
        history = trainer.fit(tiny_images)
        runs.append((_weights(student), history[-1]["train_loss"]))
    (w1, l1), (w2, l2) = runs
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], msg=k)
    assert l1 == pytest.approx(l2, rel=1e-5)


def test_zero_weight_is_plain_training_and_teachers_are_left_as_they_were(tiny_images):
    teacher = _teacher(tiny_images)
    teacher.train()
    before = _weights(teacher)
    plain, taught = _student(), _student()
    Trainer(plain, lr=3e-3, epochs=2, batch_size=64, seed=5, progress=False).fit(tiny_images)
    Trainer(taught, lr=3e-3, epochs=2, batch_size=64, seed=5, progress=False,
            teacher=[teacher, teacher], distill_weight=0.0).fit(tiny_images)
    for k, v in _weights(plain).items():
        torch.testing.assert_close(_weights(taught)[k], v, msg=k)
    assert teacher.training  # its mode comes back
    for k, v in before.items():
        assert torch.equal(teacher.state_dict()[k], v), k


def test_the_loss_is_the_weighted_label_and_distillation_terms(tiny_images):
    teacher = _teacher(tiny_images)
    student = _student(dropout=0.0)
    x, y = tiny_images
    trainer = Trainer(student, lr=0.0, epochs=1, batch_size=256, seed=0, progress=False,
                      teacher=teacher, distill_weight=0.25, distill_temperature=2.0,
                      label_smoothing=0.1)
    history = trainer.fit((x, y))
    # lr 0 and no dropout: one full-batch epoch's loss can be recomputed.
    out = student(x)
    with torch.no_grad():
        soft = F.softmax(teacher.eval()(x) / 2.0, 1)
    kl = F.kl_div(F.log_softmax(out / 2.0, 1), soft, reduction="batchmean")
    want = 0.75 * F.cross_entropy(out, y, label_smoothing=0.1) + 0.25 * 4.0 * kl
    assert history[-1]["train_loss"] == pytest.approx(want.item(), rel=1e-4)


def test_a_student_learns_the_teachers_function_without_labels():
    # The labels are noise; with all of the loss on the teacher, the student's
    # predictions on new inputs follow the teacher, not the labels.
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4))
    x = torch.randn(1024, 8)
    noise = torch.randint(0, 4, (1024,))
    student = build_mlp([8, 64, 4])
    Trainer(student, optimizer="adamw", lr=1e-2, epochs=30, batch_size=128, seed=0,
            progress=False, teacher=teacher, distill_weight=1.0,
            distill_temperature=2.0).fit((x, noise))
    new = torch.randn(2000, 8)
    with torch.no_grad():
        agree = (student.eval()(new).argmax(1) == teacher(new).argmax(1)).float().mean()
    assert agree > 0.85


def test_mixup_batches_are_labelled_by_the_teacher_as_the_student_sees_them(tiny_images):
    teacher = _teacher(tiny_images)
    seen = []
    original = teacher.forward
    teacher.forward = lambda x: (seen.append(x.clone()), original(x))[1]
    trainer = Trainer(_student(), lr=1e-3, epochs=1, batch_size=128, seed=0, progress=False,
                      teacher=teacher, mixup=0.4)
    trainer.fit(tiny_images)
    # Two checks of the outputs before training, then one call per batch on mixed,
    # float (not raw uint8) images.
    batches = seen[1:]
    assert len(batches) == 2 and all(b.dtype == torch.float32 for b in batches)
    assert not any(torch.equal(b, b.round()) for b in batches)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"teacher": "model.pt"}, TypeError, "teacher must be None"),
        ({"teacher": []}, TypeError, "teacher must be None"),
        ({"teacher": [nn.Linear(784, 10), 3]}, TypeError, "Module instances"),
        ({"teacher": nn.Linear(784, 10), "distill_weight": 1.5}, ValueError, r"\[0, 1\]"),
        ({"teacher": nn.Linear(784, 10), "distill_weight": -0.1}, ValueError, ">= 0"),
        ({"teacher": nn.Linear(784, 10), "distill_temperature": 0}, ValueError, "> 0"),
        ({"teacher": nn.Linear(784, 10), "distill_temperature": float("inf")}, ValueError,
         "finite"),
    ],
)
def test_bad_distillation_settings_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        Trainer(build_mlp([784, 8, 10]), progress=False, **kwargs)


def test_a_teacher_that_does_not_fit_fails_before_any_step(tiny_images):
    student = _student()
    before = _weights(student)
    with pytest.raises(ValueError, match="teacher must be another"):
        Trainer(student, progress=False, teacher=student)
    for teacher, match in ((build_mlp([784, 8, 3]), "3 classes|has 10 classes"),
                           (nn.Linear(100, 10), "does not take")):
        trainer = Trainer(student, progress=False, teacher=teacher, epochs=1)
        with pytest.raises(ValueError, match=match):
            trainer.fit(tiny_images)
        assert len(trainer.history) == 0
    for k, v in before.items():
        assert torch.equal(student.state_dict()[k], v), k

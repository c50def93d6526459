"""lstmkit.objectives: the pinball (quantile) loss and the Pinball objective of the panel
forecaster."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.objectives import Pinball, pinball_loss

QS = [0.1, 0.5, 0.9]


def test_pinball_loss_by_hand() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([2.5, 0.0], dtype=torch.float64)
    got = pinball_loss(pred, target, torch.tensor(QS, dtype=torch.float64))
    # target 2.5: errors 1.5, 0.5, -0.5 -> 0.1 * 1.5, 0.5 * 0.5, (0.9 - 1) * -0.5
    # target 0: errors -1, -2, -3 -> (0.1 - 1) * -1, (0.5 - 1) * -2, (0.9 - 1) * -3
    want = torch.tensor([[0.15, 0.25, 0.05], [0.9, 1.0, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # no error, no loss; an error on the right side of a quantile costs q per unit
    assert (
        pinball_loss(torch.ones(1, 3), torch.ones(1), torch.tensor(QS, dtype=torch.float64))
        .sum()
        .item()
        == 0.0
    )


def test_the_sample_quantile_minimises_the_mean_pinball_loss() -> None:
    rng = np.random.default_rng(0)
    sample = torch.from_numpy(rng.gamma(2.0, 3.0, 201))  # skewed: mean and median differ
    grid = torch.linspace(float(sample.min()), float(sample.max()), 2001, dtype=torch.float64)
    for q in (0.1, 0.5, 0.9):
        best = torch.quantile(sample, q)  # (n - 1) q is a whole number: an order statistic
        qt = torch.tensor([q], dtype=torch.float64)

        def mean_loss(c: torch.Tensor, qt: torch.Tensor = qt) -> torch.Tensor:
            pred = c.reshape(-1, 1, 1).expand(-1, len(sample), 1)
            return pinball_loss(pred, sample.expand(len(c), -1), qt).mean((1, 2))

        at_best = float(mean_loss(best[None])[0])
        losses = mean_loss(grid)
        assert at_best <= float(losses.min()) + 1e-12, q
        # and the grid's minimiser lies next to the sample quantile
        assert abs(float(grid[losses.argmin()]) - float(best)) < 0.05 * float(sample.std())


def test_pinball_objective_losses_mae_and_coverage() -> None:
    obj = Pinball(QS)
    assert obj.median == 1 and obj.monitor == "loss"
    # (B=2, H=2, Q=3)
    out = torch.tensor(
        [[[0.0, 1.0, 2.0], [1.0, 2.0, 4.0]], [[-1.0, 0.0, 1.0], [5.0, 6.0, 7.0]]],
        dtype=torch.float64,
    )
    target = torch.tensor([[1.5, 4.0], [3.0, 6.0]], dtype=torch.float64)
    losses = obj.losses(out, target)
    assert losses.shape == (12,)
    torch.testing.assert_close(
        losses,
        pinball_loss(out, target, torch.tensor(QS, dtype=torch.float64)).reshape(-1),
        rtol=0,
        atol=0,
    )
    m = obj.summarise(obj.sums(out, target, losses))
    # medians 1, 2, 0, 6 against 1.5, 4, 3, 6
    assert m["mae"] == pytest.approx((0.5 + 2.0 + 3.0 + 0.0) / 4, abs=1e-12)
    # inside [q0.1, q0.9]: 1.5 in [0, 2]; 4 in [1, 4] (the edge counts); 3 not in [-1, 1]; 6 in [5, 7]
    assert m["coverage"] == pytest.approx(0.75, abs=1e-12)
    assert m["loss"] == pytest.approx(float(losses.mean()), rel=1e-12)
    assert m["examples"] == 4


def test_pinball_with_members_scores_their_mean() -> None:
    torch.manual_seed(0)
    obj = Pinball(QS)
    out = torch.randn(5, 3, 4, 3, dtype=torch.float64).sort(-1).values  # (B, K, H, Q)
    target = torch.randn(5, 4, dtype=torch.float64)
    losses = obj.losses(out, target)
    assert losses.shape == (5 * 3 * 4 * 3,)  # every member's own loss
    per_member = torch.stack([obj.losses(out[:, k], target) for k in range(3)])  # (K, B*H*Q)
    torch.testing.assert_close(
        losses.reshape(5, 3, -1), per_member.reshape(3, 5, -1).transpose(0, 1), rtol=0, atol=0
    )
    m4 = obj.summarise(obj.sums(out, target, losses))
    mean = out.mean(1)
    m3 = obj.summarise(obj.sums(mean, target, obj.losses(mean, target)))
    assert m4["mae"] == pytest.approx(m3["mae"], rel=1e-12)
    assert m4["coverage"] == pytest.approx(m3["coverage"], abs=1e-12)
    assert m4["mae"] == pytest.approx(float((mean[..., 1] - target).abs().mean()), rel=1e-12)
    assert m4["loss"] == pytest.approx(float(losses.mean()), rel=1e-12)
    # the loss of the members is not the loss of their mean (each member is trained on its own)
    assert m4["loss"] != pytest.approx(m3["loss"], rel=1e-6)


@pytest.mark.parametrize(
    "bad", [[], [0.1, 0.9], [0.5, 0.1], [0.1, 0.5, 0.5], [0.0, 0.5], [0.5, 1.0], [-0.1, 0.5]]
)
def test_bad_quantiles_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="quantiles must be ascending, distinct, in \\(0, 1\\)"):
        Pinball(bad)


def test_pinball_shape_errors() -> None:
    obj = Pinball(QS)
    with pytest.raises(
        ValueError, match=r"pinball output must be \(B, \[K,\] H, 3\), got \(2, 4, 2\)"
    ):
        obj.losses(torch.zeros(2, 4, 2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"pinball target \(2, 5\) does not match output"):
        obj.losses(torch.zeros(2, 4, 3), torch.zeros(2, 5))

"""LazyAdam: exactly Adam on dense gradients, Adam on the touched rows only for sparse ones."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from movierec.optim import LazyAdam, mark_sparse  # noqa: E402


def _run(opt_cls, grads: list[torch.Tensor], sparse: bool, **kw) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(6, 3))
    opt = opt_cls([table], lr=0.05, **kw)
    for g in grads:
        table.grad = g.to_sparse(sparse_dim=1) if sparse else g.clone()
        opt.step()
    return table.detach().clone(), opt.state[table]


def _grads(rows: list[list[int]]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for touched in rows:
        g = torch.zeros(6, 3)
        g[touched] = torch.randn(len(touched), 3, generator=gen)
        out.append(g)
    return out


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_dense_gradients_get_exactly_adams_update(wd: float) -> None:
    grads = [torch.randn(6, 3, generator=torch.Generator().manual_seed(s)) for s in range(8)]
    ours, state = _run(LazyAdam, grads, sparse=False, weight_decay=wd)
    ref, ref_state = _run(torch.optim.Adam, grads, sparse=False, weight_decay=wd)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(state["exp_avg_sq"], ref_state["exp_avg_sq"])
    assert float(state["step"]) == 8


def test_sparse_gradients_touching_every_row_equal_dense_adam() -> None:
    grads = _grads([list(range(6))] * 5)
    ours, _ = _run(LazyAdam, grads, sparse=True, weight_decay=0.01)
    ref, _ = _run(torch.optim.Adam, grads, sparse=False, weight_decay=0.01)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_untouched_rows_keep_weights_and_moments() -> None:
    torch.manual_seed(0)
    start = torch.randn(6, 3)
    grads = _grads([[0, 1], [1, 2], [0, 2]])
    ours, state = _run(LazyAdam, grads, sparse=True, weight_decay=0.1)
    torch.testing.assert_close(ours[3:], start[3:], rtol=0, atol=0)
    assert not state["exp_avg"][3:].any() and not state["exp_avg_sq"][3:].any()
    assert not torch.equal(ours[:3], start[:3])
    # Dense Adam keeps moving rows 0-2 by momentum in steps where they were not touched, and
    # decays rows 3-5: the lazy update is a different optimizer, not a rounding difference.
    dense, _ = _run(torch.optim.Adam, grads, sparse=False, weight_decay=0.1)
    assert not torch.allclose(dense[3:], start[3:])
    assert not torch.allclose(dense[:3], ours[:3])


def test_bad_hyper_parameters_raise() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kw in ({"lr": 0}, {"betas": (0.9, 1.0)}, {"weight_decay": -1}):
        with pytest.raises(ValueError):
            LazyAdam(p, **kw)


def test_mark_sparse_sets_and_restores() -> None:
    module = torch.nn.ModuleDict({"a": torch.nn.Embedding(4, 2), "b": torch.nn.Linear(2, 2),
                                  "c": torch.nn.EmbeddingBag(4, 2, mode="sum")})
    changed = mark_sparse(module)
    assert len(changed) == 2 and module["a"].sparse and module["c"].sparse
    module["a"](torch.tensor([1])).sum().backward()
    assert module["a"].weight.grad.is_sparse
    mark_sparse(torch.nn.ModuleList(changed), False)
    assert not module["a"].sparse and not module["c"].sparse

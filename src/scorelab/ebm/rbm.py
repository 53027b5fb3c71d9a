"""Bernoulli–Bernoulli RBM p(x, z) ∝ exp(xᵀWz + bᵀx + cᵀz), x ∈ {0,1}^D, z ∈ {0,1}^H (seed 002).

In the library's convention p ∝ exp(−E): the energy is E(x, z) = −(xᵀWz + bᵀx + cᵀz) (seed 002
writes f = −E) and the free energy F(x) = −log Σ_z exp(−E(x, z)) = −bᵀx − Σⱼ softplus(cⱼ + (Wᵀx)ⱼ),
so p(x) = exp(−F(x))/Z.  With H ≤ 20 hidden units, log Z is exact by enumerating the 2^H hidden
states, and so are the log-likelihood and the marginals p(xᵢ = 1), p(zⱼ = 1).  Training
(`fit_rbm`) is CD-k (Hinton 2002) or PCD (Tieleman 2008) with closed-form gradients, plain or
momentum SGD; with method="pcd", k=1, shuffle=False, momentum=0 it is scikit-learn's
`BernoulliRBM.fit` step for step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorelab._types import SampleResult
from scorelab._utils import ScorelabError, make_generator

MAX_EXACT_HIDDEN = 20  # 2^20 hidden states: log Z takes ~3-5 s at D = 64 on one busy thread
DIGITS_THRESHOLD = 0.5  # pixel v/16 > 0.5, i.e. raw value v ≥ 9 of 0..16, becomes 1
METHODS = ("cd", "pcd")
_CHUNK = 1 << 22  # elements per temporary in the enumerations: 32 MiB in float64


class RBM(nn.Module):
    """Bernoulli–Bernoulli RBM, E(x, z) = −(xᵀWz + bᵀx + cᵀz) (seed 002), W ~ N(0, init_std²).

    W (n_visible, n_hidden), b (n_visible,), c (n_hidden,) are Parameters; b = c = 0 at init.
    `generator` seeds W (None: seed 0, so that RBM(D, H) is always the same model).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        for name, v in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ScorelabError(f"RBM: {name} must be a positive integer, got {v!r}")
        if not init_std >= 0.0:
            raise ScorelabError(f"RBM: init_std must be ≥ 0, got {init_std}")
        g = generator if generator is not None else make_generator(0)
        w = torch.randn(n_visible, n_hidden, generator=g, dtype=torch.float64) * init_std
        self.W = nn.Parameter(w.to(dtype))
        self.b = nn.Parameter(torch.zeros(n_visible, dtype=dtype))
        self.c = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))

    @property
    def n_visible(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.W.shape[1])

    @classmethod
    def from_sklearn(cls, est, dtype: torch.dtype = torch.float64) -> RBM:
        """Our RBM with a fitted sklearn BernoulliRBM's parameters: W = components_ᵀ,
        b = intercept_visible_, c = intercept_hidden_ (its E(v, h) is ours)."""
        comp = torch.as_tensor(est.components_, dtype=dtype)
        rbm = cls(comp.shape[1], comp.shape[0], init_std=0.0, dtype=dtype)
        with torch.no_grad():
            rbm.W.copy_(comp.T)
            rbm.b.copy_(torch.as_tensor(est.intercept_visible_, dtype=dtype))
            rbm.c.copy_(torch.as_tensor(est.intercept_hidden_, dtype=dtype))
        return rbm

    # ------------------------------------------------------------------ densities
    def energy(self, x: Tensor, z: Tensor) -> Tensor:
        """E(x, z) = −(xᵀWz + bᵀx + cᵀz) per sample (seed 002's f = −E): (N, D), (N, H) → (N,)."""
        x, z = self._check_x(x, "energy"), self._check_z(z, "energy")
        return -(((x @ self.W) * z).sum(-1) + x @ self.b + z @ self.c)

    def free_energy(self, x: Tensor) -> Tensor:
        """F(x) = −bᵀx − Σⱼ softplus(cⱼ + (Wᵀx)ⱼ) = −log Σ_z exp(−E(x, z)): (N, D) → (N,)."""
        x = self._check_x(x, "free_energy")
        return -(x @ self.b) - F.softplus(x @ self.W + self.c).sum(-1)

    def hidden_prob(self, x: Tensor) -> Tensor:
        """p(zⱼ = 1 | x) = σ(cⱼ + (Wᵀx)ⱼ): (N, D) → (N, H)."""
        return torch.sigmoid(torch.addmm(self.c, self._check_x(x, "hidden_prob"), self.W))

    def visible_prob(self, z: Tensor) -> Tensor:
        """p(xᵢ = 1 | z) = σ(bᵢ + (Wz)ᵢ): (N, H) → (N, D)."""
        return torch.sigmoid(torch.addmm(self.b, self._check_z(z, "visible_prob"), self.W.T))

    def _enumerate_hidden(self):
        """Chunks (z, b + Wz, log w(z)) over all 2^H hidden states in float64, where
        log w(z) = cᵀz + Σᵢ softplus(bᵢ + (Wz)ᵢ) = log Σ_x exp(−E(x, z)); no temporary exceeds
        _CHUNK numbers. Raises ScorelabError above MAX_EXACT_HIDDEN hidden units."""
        H, D = self.n_hidden, self.n_visible
        if H > MAX_EXACT_HIDDEN:
            raise ScorelabError(
                f"exact enumeration of 2^n_hidden states: n_hidden = {H} > "
                f"{MAX_EXACT_HIDDEN}; use pseudo_log_likelihood instead"
            )
        W, b, c = (p.detach().double() for p in (self.W, self.b, self.c))
        bits = 1 << torch.arange(H, device=W.device)
        step = max(1, _CHUNK // max(D, H))
        for start in range(0, 1 << H, step):
            idx = torch.arange(start, min(start + step, 1 << H), device=W.device)
            z = ((idx[:, None] & bits) != 0).double()
            pre = torch.addmm(b, z, W.T)
            yield z, pre, z @ c + F.softplus(pre).sum(-1)

    @torch.no_grad()
    def log_partition(self) -> Tensor:
        """Exact log Z = logsumexp_z [cᵀz + Σᵢ softplus(bᵢ + (Wz)ᵢ)] over all 2^H hidden states
        (the visible sum is closed-form given z), float64; ScorelabError if H > MAX_EXACT_HIDDEN."""
        parts = [torch.logsumexp(logw, 0) for _, _, logw in self._enumerate_hidden()]
        return torch.logsumexp(torch.stack(parts), 0)

    @torch.no_grad()
    def exact_marginals(self) -> tuple[Tensor, Tensor]:
        """Exact p(xᵢ = 1) = Σ_z p(z) σ(bᵢ + (Wz)ᵢ) and p(zⱼ = 1) = Σ_z p(z) zⱼ with
        p(z) = exp(log w(z) − log Z), by one pass over the 2^H hidden states: float64 (D,), (H,).

        Each chunk is normalised by its own logsumexp and the chunks are then weighted by
        softmax over those, so that no exp overflows and Z is not computed twice.
        """
        lse, px, pz = [], [], []
        for z, pre, logw in self._enumerate_hidden():
            w = torch.softmax(logw, 0)
            lse.append(torch.logsumexp(logw, 0))
            px.append(w @ torch.sigmoid(pre))
            pz.append(w @ z)
        a = torch.softmax(torch.stack(lse), 0)
        return a @ torch.stack(px), a @ torch.stack(pz)

    @torch.no_grad()
    def log_prob(self, x: Tensor, log_z: Tensor | float | None = None) -> Tensor:
        """Exact log p(x) = −F(x) − log Z in float64: (N, D) → (N,) (log Z from log_partition
        unless given, so that a caller scoring many batches enumerates once)."""
        x = self._check_binary(x, "log_prob")
        lz = self.log_partition() if log_z is None else torch.as_tensor(log_z, dtype=torch.float64)
        return -self.double_copy().free_energy(x.double()) - lz

    @torch.no_grad()
    def pseudo_log_likelihood(self, x: Tensor) -> Tensor:
        """Exact PL(x) = Σᵢ log p(xᵢ | x₋ᵢ) = Σᵢ log σ(F(x⁽ⁱ⁾) − F(x)), x⁽ⁱ⁾ = x with bit i flipped.

        Flipping bit i by sᵢ = 1 − 2xᵢ moves the hidden pre-activation by sᵢWᵢ: all D flips of a
        sample are one (D, H) tensor, so there is no loop over bits. Float64: (N, D) → (N,).
        """
        x = self._check_binary(x, "pseudo_log_likelihood").double()
        W, b, c = (p.detach().double() for p in (self.W, self.b, self.c))
        D, H = W.shape
        out = []
        for xb in x.split(max(1, _CHUNK // (D * H))):
            pre = torch.addmm(c, xb, W)  # (n, H)
            s = 1.0 - 2.0 * xb  # (n, D)
            flipped = F.softplus(pre[:, None, :] + s[:, :, None] * W)  # (n, D, H)
            d_free = -b * s - (flipped - F.softplus(pre)[:, None, :]).sum(-1)  # F(x⁽ⁱ⁾) − F(x)
            out.append(F.logsigmoid(d_free).sum(-1))
        return torch.cat(out)

    @torch.no_grad()
    def stochastic_pseudo_log_likelihood(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        """D·log σ(F(x̃) − F(x)), x̃ = x with one uniformly drawn bit flipped per sample: the
        unbiased one-bit estimate of PL(x) that sklearn's BernoulliRBM.score_samples returns."""
        x = self._check_binary(x, "stochastic_pseudo_log_likelihood").double()
        n, d = x.shape
        i = torch.randint(0, d, (n,), generator=generator, device=x.device)
        rows = torch.arange(n, device=x.device)
        xt = x.clone()
        xt[rows, i] = 1.0 - xt[rows, i]
        m = self.double_copy()
        return d * F.logsigmoid(m.free_energy(xt) - m.free_energy(x))

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def gibbs(
        self,
        x0: Tensor,
        n_steps: int,
        *,
        generator: torch.Generator,
        keep_every: int | None = None,
    ) -> SampleResult:
        """Block Gibbs z ~ p(z | x) = Bern(σ(c + Wᵀx)), then x ~ p(x | z) = Bern(σ(b + Wz)), on
        all chains at once (seed 002's RBM; the two layers are conditionally independent).

        Returns scorelab's SampleResult: samples x after n_steps sweeps (N, D), nfe = n_steps
        (sweeps per chain), trajectory (S, N, D) every `keep_every` sweeps (else None), info
        {"hidden": the last z (N, H), "visible_prob": p(x = 1 | z) of the last sweep (N, D),
        a noise-free picture of the sample}.
        """
        x = self._check_binary(x0, "gibbs").to(self.W.dtype)
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ScorelabError(f"gibbs: n_steps must be an integer ≥ 0, got {n_steps!r}")
        if keep_every is not None and keep_every < 1:
            raise ScorelabError(f"gibbs: keep_every must be ≥ 1, got {keep_every}")
        z = torch.zeros(x.shape[0], self.n_hidden, dtype=x.dtype, device=x.device)
        px = x
        traj = []
        for step in range(1, n_steps + 1):
            z = torch.bernoulli(self.hidden_prob(x), generator=generator)
            px = self.visible_prob(z)
            x = torch.bernoulli(px, generator=generator)
            if keep_every is not None and step % keep_every == 0:
                traj.append(x)
        return SampleResult(
            samples=x,
            nfe=n_steps,
            trajectory=torch.stack(traj) if traj else None,
            info={"hidden": z, "visible_prob": px},
        )

    # ------------------------------------------------------------------ helpers
    def double_copy(self) -> RBM:
        """This RBM in float64 (itself when already float64): exact scores are taken there."""
        if self.W.dtype == torch.float64:
            return self
        m = RBM(self.n_visible, self.n_hidden, init_std=0.0, dtype=torch.float64)
        with torch.no_grad():
            for p, q in zip(m.parameters(), self.parameters(), strict=True):
                p.copy_(q)
        return m

    def _check_x(self, x: Tensor, where: str) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.n_visible:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ScorelabError(f"{where}: x must be (N, {self.n_visible}), got {shape}")
        return x.to(self.W.dtype) if x.dtype != self.W.dtype else x

    def _check_z(self, z: Tensor, where: str) -> Tensor:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.n_hidden:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ScorelabError(f"{where}: z must be (N, {self.n_hidden}), got {shape}")
        return z.to(self.W.dtype) if z.dtype != self.W.dtype else z

    def _check_binary(self, x: Tensor, where: str) -> Tensor:
        x = self._check_x(x, where)
        if not bool(((x == 0) | (x == 1)).all()):
            raise ScorelabError(f"{where}: x must be binary (0/1); binarise it first")
        return x


# ---------------------------------------------------------------------- training


@dataclass(frozen=True)
class RBMFitResult:
    """What fit_rbm returns.

    history:  per evaluated epoch (0 = before training): "epoch", "seconds" (cumulative training
              time, monitoring excluded), "<name>_pl" (mean exact pseudo-log-likelihood of each
              monitored set) and, with exact_ll, "<name>_ll" (mean exact log-likelihood).
    seconds:  training time, monitoring excluded.
    chains:   PCD's persistent hidden states (n_chains, H) at the end; None for CD.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    chains: Tensor | None = None


def fit_rbm(
    rbm: RBM,
    x: Tensor,
    *,
    epochs: int,
    generator: torch.Generator,
    method: str = "pcd",
    k: int = 1,
    lr: float = 0.05,
    batch_size: int = 10,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    n_chains: int | None = None,
    shuffle: bool = True,
    monitor: Mapping[str, Tensor] | None = None,
    exact_ll: bool = False,
    eval_every: int = 1,
) -> RBMFitResult:
    """CD-k / PCD-k SGD on ∇log p = E_data[x zᵀ] − E_model[x zᵀ] (seed 002; Hinton 2002,
    Tieleman 2008), with both phases in closed form: x⁺ p(z | x⁺) and x⁻ p(z | x⁻).

    method "cd": chains start at the minibatch, z ~ p(z | x⁺), then k block-Gibbs sweeps;
    "pcd": `n_chains` (default batch_size) persistent chains whose hidden states start at 0
    (as scikit-learn's) and advance k sweeps per minibatch. θ ← θ + v with v ← m·v + lr·(ĝ − λW)
    (λ = weight_decay, on W only). Minibatches are consecutive slices of a permutation drawn from
    `generator` each epoch, or of x itself with shuffle=False (scikit-learn's order).

    Each phase is averaged over its own rows; scikit-learn divides both sums by the minibatch
    size, which differs only on a final short minibatch. Monitoring (`monitor`, default
    {"train": x}; {} for none) runs at epoch 0, every `eval_every` epochs and at the end.
    """
    x = rbm._check_binary(x, "fit_rbm")
    if x.shape[0] == 0:
        raise ScorelabError("fit_rbm: x has no rows")
    _check_fit_args(method, epochs, k, lr, batch_size, momentum, weight_decay, n_chains, eval_every)
    if exact_ll and rbm.n_hidden > MAX_EXACT_HIDDEN:
        raise ScorelabError(
            f"fit_rbm: exact_ll needs n_hidden ≤ {MAX_EXACT_HIDDEN}, got {rbm.n_hidden}"
        )
    monitor = {"train": x} if monitor is None else dict(monitor)
    for name, xm in monitor.items():
        rbm._check_binary(xm, f"fit_rbm monitor {name!r}")
    history: dict[str, list[float]] = {"epoch": [], "seconds": []}

    def evaluate(epoch: int, seconds: float) -> None:
        history["epoch"].append(epoch)
        history["seconds"].append(seconds)
        lz = rbm.log_partition() if exact_ll and monitor else None
        for name, xm in monitor.items():
            history.setdefault(f"{name}_pl", []).append(float(rbm.pseudo_log_likelihood(xm).mean()))
            if lz is not None:
                history.setdefault(f"{name}_ll", []).append(float(rbm.log_prob(xm, lz).mean()))

    trainer = _Trainer(rbm, x, method, k, lr, batch_size, momentum, weight_decay, n_chains)
    seconds = 0.0
    evaluate(0, 0.0)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        trainer.epoch(generator, shuffle)
        seconds += time.perf_counter() - t0
        if epoch % eval_every == 0 or epoch == epochs:
            trainer.write_back()
            evaluate(epoch, seconds)
    trainer.write_back()
    chains = trainer.hidden[:, : rbm.n_hidden].clone() if method == "pcd" else None
    return RBMFitResult(history=history, seconds=seconds, chains=chains)


def _check_fit_args(method, epochs, k, lr, batch_size, momentum, weight_decay, n_chains, every):
    if method not in METHODS:
        raise ScorelabError(f"fit_rbm: method must be one of {', '.join(METHODS)}, got {method!r}")
    for name, v, lo in (("epochs", epochs, 0), ("k", k, 1), ("batch_size", batch_size, 1),
                        ("eval_every", every, 1)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ScorelabError(f"fit_rbm: {name} must be an integer ≥ {lo}, got {v!r}")
    if n_chains is not None and method != "pcd":
        raise ScorelabError("fit_rbm: n_chains is for method='pcd' (CD's chains are the batch)")
    if n_chains is not None and (
        isinstance(n_chains, bool) or not isinstance(n_chains, int) or n_chains < 1
    ):
        raise ScorelabError(f"fit_rbm: n_chains must be a positive integer, got {n_chains!r}")
    for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ScorelabError(f"fit_rbm: {name} must be a finite number, got {v!r}")
    if not lr > 0:
        raise ScorelabError(f"fit_rbm: lr must be > 0, got {lr}")
    if not 0.0 <= momentum < 1.0:
        raise ScorelabError(f"fit_rbm: momentum must lie in [0, 1), got {momentum}")
    if not weight_decay >= 0:
        raise ScorelabError(f"fit_rbm: weight_decay must be ≥ 0, got {weight_decay}")


class _Trainer:
    """The SGD loop on one augmented matrix A = [[W, b], [cᵀ, ·]] of shape (D+1, H+1).

    With a constant 1 appended to x and to z, [x, 1] A[:, :H] = xW + c, [z, 1] A[:D]ᵀ = zWᵀ + b,
    and [x, 1]ᵀ[p(z|x), 1] holds the W, b and c gradients at once: a minibatch costs ~10 torch
    calls whatever the sizes, which is what decides the speed at scikit-learn's batch size 10
    (each call costs microseconds of dispatch for a few hundred flops). The corner A[D, H]
    gets +lr − lr and is never read. Uniforms are drawn for many minibatches per call.
    """

    def __init__(self, rbm, x, method, k, lr, batch_size, momentum, weight_decay, n_chains):
        self.rbm, self.method, self.k, self.lr = rbm, method, k, lr
        self.momentum, self.weight_decay = momentum, weight_decay
        dt, dev = rbm.W.dtype, rbm.W.device
        D, H = rbm.n_visible, rbm.n_hidden
        self.D, self.H, self.bs = D, H, batch_size
        self.n_chains = (n_chains or batch_size) if method == "pcd" else batch_size
        ones = torch.ones(x.shape[0], 1, dtype=dt, device=dev)
        self.xa = torch.cat([x.to(dt), ones], 1)
        A = torch.zeros(D + 1, H + 1, dtype=dt, device=dev)
        with torch.no_grad():
            A[:D, :H], A[:D, H], A[D, :H] = rbm.W, rbm.b, rbm.c
        self.A = A
        self.A_h, self.A_v = A[:, :H], A[:D].T  # [x, 1] → hidden, [z, 1] → visible pre-acts
        self.vel = torch.zeros_like(A) if momentum > 0 else None
        C = self.n_chains
        self.h_pos = torch.ones(batch_size, H + 1, dtype=dt, device=dev)
        self.hidden = torch.ones(C, H + 1, dtype=dt, device=dev)  # chain state [z, 1]
        self.hidden[:, :H] = 0.0
        self.v_neg = torch.ones(C, D + 1, dtype=dt, device=dev)
        self.h_neg = torch.ones(C, H + 1, dtype=dt, device=dev)

    def write_back(self) -> None:
        D, H = self.D, self.H
        with torch.no_grad():
            self.rbm.W.copy_(self.A[:D, :H])
            self.rbm.b.copy_(self.A[:D, H])
            self.rbm.c.copy_(self.A[D, :H])

    def _buffers(self, m: int) -> tuple[Tensor, ...]:
        """Views for a minibatch of m rows: (h_pos, its H columns, chains' z, x⁻, p(z|x⁻) …)."""
        c = m if self.method == "cd" else self.n_chains
        H, D = self.H, self.D
        hp, hid, vn, hn = self.h_pos[:m], self.hidden[:c], self.v_neg[:c], self.h_neg[:c]
        return hp, hp[:, :H], hid, hid[:, :H], vn, vn[:, :D], hn, hn[:, :H]

    @torch.no_grad()
    def epoch(self, generator: torch.Generator, shuffle: bool) -> None:
        n = self.xa.shape[0]
        xa = self.xa[torch.randperm(n, generator=generator)] if shuffle else self.xa
        batches = xa.split(self.bs)
        C, D, H, k, lr = self.n_chains, self.D, self.H, self.k, self.lr
        cd = self.method == "cd"
        k_h = k + 1 if cd else k  # CD draws z⁰ ~ p(z | x⁺) too
        block = max(1, (1 << 20) // (C * (k * D + k_h * H)))  # minibatches per draw of uniforms
        dt, dev = self.A.dtype, self.A.device
        A, A_h, A_v, vel = self.A, self.A_h, self.A_v, self.vel
        full = self._buffers(self.bs)
        for b0 in range(0, len(batches), block):
            nb = min(block, len(batches) - b0)
            # one draw for many minibatches, unbound once: indexing tensors costs µs per call
            u_v = torch.rand(nb * k, C, D, generator=generator, dtype=dt, device=dev).unbind(0)
            u_h = torch.rand(nb * k_h, C, H, generator=generator, dtype=dt, device=dev).unbind(0)
            for j in range(nb):
                xb = batches[b0 + j]
                m = xb.shape[0]
                hp, hp_z, hid, hid_z, vn, vn_x, hn, hn_z = (
                    full if m == self.bs else self._buffers(m)
                )
                c = hid.shape[0]
                uv, uh = u_v[j * k : (j + 1) * k], u_h[j * k_h : (j + 1) * k_h]
                if c != C:
                    uv, uh = [u[:c] for u in uv], [u[:c] for u in uh]
                torch.sigmoid(xb @ A_h, out=hp_z)
                if cd:
                    torch.lt(uh[k], hp_z, out=hid_z)
                for s in range(k):
                    torch.lt(uv[s], torch.sigmoid(hid @ A_v), out=vn_x)
                    torch.sigmoid(vn @ A_h, out=hn_z)
                    if s < k - 1:
                        torch.lt(uh[s], hn_z, out=hid_z)
                if vel is None:
                    if self.weight_decay:
                        A[:D, :H].mul_(1.0 - lr * self.weight_decay)
                    A.addmm_(xb.T, hp, alpha=lr / m)
                    A.addmm_(vn.T, hn, alpha=-lr / c)
                else:
                    vel.mul_(self.momentum)
                    vel.addmm_(xb.T, hp, alpha=lr / m).addmm_(vn.T, hn, alpha=-lr / c)
                    if self.weight_decay:
                        vel[:D, :H].add_(A[:D, :H], alpha=-lr * self.weight_decay)
                    A.add_(vel)
                if not cd:  # advance the persistent chains: z ~ p(z | x⁻) (old θ, as sklearn)
                    torch.lt(uh[k - 1], hn_z, out=hid_z)


# ---------------------------------------------------------------------- data


def binarized_digits(
    split: str = "train",
    *,
    threshold: float = DIGITS_THRESHOLD,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Tensor:
    """scikit-learn's 8×8 digits (`images.load_digits`, values v/16) as (N, 64) float32 bits:
    pixel > threshold → 1. The default 0.5 keeps raw values v ≥ 9 of 0..16."""
    from scorelab.images import load_digits

    if not 0.0 <= threshold < 1.0:
        raise ScorelabError(f"binarized_digits: threshold must lie in [0, 1), got {threshold}")
    img = load_digits(split, test_fraction=test_fraction, seed=seed).images
    return (img.reshape(img.shape[0], -1) > threshold).float()


def independent_bernoulli_log_prob(train: Tensor, x: Tensor, alpha: float = 1.0) -> Tensor:
    """log p(x) = Σᵢ xᵢ log qᵢ + (1 − xᵢ) log(1 − qᵢ), qᵢ = (Σ trainᵢ + α)/(N + 2α): the
    no-hidden-unit baseline (an RBM with W = 0 and b = logit q), float64 (N,)."""
    q = (train.double().sum(0) + alpha) / (train.shape[0] + 2 * alpha)
    xd = x.double()
    return (xd * q.log() + (1 - xd) * torch.log1p(-q)).sum(-1)

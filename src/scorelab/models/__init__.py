"""Score models: networks that map x (and a noise level or time) to a score."""

from scorelab.models.energy import EnergyScore
from scorelab.models.mlp import CONDITIONING, EnergyMLP, FourierEmbedding, ScoreMLP
from scorelab.models.ncsn import NCSN, InstanceNormPlus, ncsn
from scorelab.models.wrap import MarginalStdScaled, model_log_prob_fn, model_score_fn
from scorelab.registry import Registry

MODELS: Registry = Registry("model")
MODELS.register("score_mlp")(ScoreMLP)
MODELS.register("ncsn")(ncsn)


@MODELS.register("energy_mlp")
def energy_mlp(
    dim: int,
    hidden: int = 128,
    depth: int = 3,
    *,
    conditioning: str = "none",
    embed_dim: int = 32,
    activation: str = "softplus",
) -> EnergyScore:
    """An EnergyMLP wrapped as a score model (s = −∇E)."""
    return EnergyScore(
        EnergyMLP(
            dim,
            hidden,
            depth,
            conditioning=conditioning,
            embed_dim=embed_dim,
            activation=activation,
        )
    )


__all__ = [
    "CONDITIONING",
    "MODELS",
    "MarginalStdScaled",
    "EnergyMLP",
    "EnergyScore",
    "FourierEmbedding",
    "InstanceNormPlus",
    "NCSN",
    "ScoreMLP",
    "energy_mlp",
    "ncsn",
    "model_log_prob_fn",
    "model_score_fn",
]

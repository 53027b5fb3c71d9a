"""Score models: networks that map x (and a noise level or time) to a score."""

from scorelab._utils import ScorelabError
from scorelab.models.energy import EnergyConvNet, EnergyScore, GaussianEnergy
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


@MODELS.register("energy_conv")
def energy_conv(
    dim: int | None = None,
    *,
    channels: int = 1,
    image_size: int | None = None,
    n_features: int = 16,
) -> EnergyScore:
    """An EnergyConvNet for square images wrapped as a score model (s = −∇E)."""
    if image_size is None:
        if dim is None:
            raise ScorelabError("energy_conv model: give image_size (or the flat data dim)")
        image_size = round((dim / channels) ** 0.5)
    if dim is not None and dim != channels * image_size**2:
        raise ScorelabError(
            f"energy_conv model: data dim {dim} != channels·image_size² = "
            f"{channels * image_size**2}"
        )
    return EnergyScore(EnergyConvNet(channels, image_size, n_features))


__all__ = [
    "CONDITIONING",
    "MODELS",
    "MarginalStdScaled",
    "EnergyConvNet",
    "EnergyMLP",
    "EnergyScore",
    "GaussianEnergy",
    "FourierEmbedding",
    "InstanceNormPlus",
    "NCSN",
    "ScoreMLP",
    "energy_conv",
    "energy_mlp",
    "ncsn",
    "model_log_prob_fn",
    "model_score_fn",
]

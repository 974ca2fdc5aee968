"""The optimum a loss aims for: free unit embeddings optimised under any orbitcl loss.

`python -m orbitcl.optimum loss=supcon loss.temperature=0.5 class_counts=[12,6,3,3] dim=8`

No encoder and no data: two views per label, 2N free unit vectors in R^dim, float64, moved by
Riemannian gradient steps (the gradient projected on the sphere's tangent space, then the rows
renormalised) until the loss stops falling. The result is the loss's target geometry
(geometry.md, "Optimal geometries"): balanced SupCon collapses classes onto a regular simplex,
imbalanced SupCon bends it with class sizes, Soft SupCon reaches `L = H(W)`. Prints the prototype
cosine matrix and, for weighted losses, `L - H(W)`; writes `optimum.json` and a heatmap into
`out`.
"""

import json
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from orbitcl import CONF_DIR
from orbitcl.experiments.optimum import optimal_embeddings, summary


def main(argv: list[str] | None = None) -> int:
    overrides = sys.argv[1:] if argv is None else argv
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("optimum", overrides=overrides)
    try:
        loss = instantiate(cfg.loss)
        counts = list(cfg.class_counts)
        if not counts or any(not isinstance(c, int) or c < 1 for c in counts):
            raise ValueError(f"class_counts={counts} is invalid: must be integers >= 1")
        labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        z = optimal_embeddings(loss, labels, cfg.dim, cfg.steps, cfg.lr, cfg.seed)
    except ValueError as err:
        print(f"orbitcl.optimum: error: {err}", file=sys.stderr)
        return 2
    result = {"loss_config": dict(cfg.loss), "class_counts": counts, "dim": cfg.dim}
    result |= summary(loss, z, labels)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "optimum.json").write_text(json.dumps(result, indent=2) + "\n")
    from orbitcl.tracking import plots

    cosines = torch.tensor(result["prototype_cosines"])
    plots.save(
        plots.cosine_heatmap(cosines, f"optimum of {cfg.loss._target_}"), out / "optimum.png"
    )
    print(
        f"loss {result['loss']:.6f}"
        + (
            f", H(W) {result['entropy']:.6f}, L - H(W) {result['loss_minus_entropy']:.2e}"
            if "entropy" in result
            else ""
        )
    )
    print("prototype cosines (classes of sizes " + ", ".join(map(str, counts)) + "):")
    for row in result["prototype_cosines"]:
        print("  " + " ".join(f"{value:+.4f}" for value in row))
    print(f"written: {out / 'optimum.json'}, {out / 'optimum.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

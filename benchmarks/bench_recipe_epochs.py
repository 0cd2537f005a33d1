"""What a recipe's training costs per epoch here, and the full run it projects.

Each round runs every recipe for two epochs through :func:`fcnet.recipes.run_recipe`
(the same data, model, Trainer and threads as a real run): the first epoch with the
recipe's augmentation, the second without (``clean_epochs=1``); a recipe without
augmentation runs both plainly. Recipes alternate round by round (A, B, A, B, ...), so
a change in the machine's speed (other work, host steal) touches all of them alike, and
the median over rounds is reported. The projection is ``augmented epochs x the median
augmented epoch + clean epochs x the median clean epoch``: training time only, without
loading the data, the test pass and the figures (a few seconds).

Use it to compare recipes measured in different hours: the ratio of two recipes'
projections holds when the machine is slower than usual, their absolute times do not.

Examples::

    python benchmarks/bench_recipe_epochs.py                      # best and best_long
    python benchmarks/bench_recipe_epochs.py baseline deep --rounds 5
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common as C

from fcnet.recipes import Recipe, get_recipe, run_recipe


def augments(recipe: Recipe) -> bool:
    """Whether the recipe's batches are augmented in some epochs."""
    return recipe.augment is not None


def epoch_seconds(name: str, *, threads: int | None, seed: int, limit_train: int | None,
                  work: Path) -> tuple[float, float]:
    """One round for recipe ``name``: seconds of its augmented and of its clean epoch
    (the same epoch twice for a recipe without augmentation)."""
    recipe = get_recipe(name)
    augmented = augments(recipe)
    # with_epochs keeps the clean epochs, so set them first: one of the two epochs.
    short = replace(recipe, clean_epochs=1 if augmented else 0).with_epochs(2)
    out = work / name
    run_recipe(short, out_dir=out, seed=seed, threads=threads, limit_train=limit_train,
               overwrite=True, quiet=True)
    history = json.loads((out / "history.json").read_text())["epochs"]
    first, second = (e["seconds"] for e in history)
    return (first, second) if augmented else ((first + second) / 2,) * 2


def main() -> None:
    """Time the recipes named on the command line and write the JSON result."""
    parser = C.base_parser(__doc__.splitlines()[0], default_threads=None)
    parser.add_argument("recipes", nargs="*", default=["best", "best_long"],
                        help="recipe names (default: best best_long)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all recipes")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    recipes = [get_recipe(n) for n in args.recipes]  # an unknown name fails before any work
    rounds = 1 if args.quick else args.rounds
    limit = 2000 if args.quick else None
    started = time.time()
    times: dict[str, list[tuple[float, float]]] = {r.name: [] for r in recipes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for r in recipes:
                times[r.name].append(epoch_seconds(r.name, threads=args.threads,
                                                   seed=args.seed, limit_train=limit,
                                                   work=Path(tmp)))
                aug, clean = times[r.name][-1]
                print(f"round {i + 1}/{rounds} {r.name}: augmented epoch {aug:.1f} s, "
                      f"clean epoch {clean:.1f} s", flush=True)
    rows: list[dict[str, Any]] = []
    for r in recipes:
        aug = statistics.median(a for a, _ in times[r.name])
        clean = statistics.median(c for _, c in times[r.name])
        n_aug = r.epochs - r.clean_epochs if augments(r) else 0
        rows.append({"recipe": r.name, "epochs": r.epochs, "augmented_epochs": n_aug,
                     "augmented_epoch_s": aug, "clean_epoch_s": clean,
                     "projected_train_s": n_aug * aug + (r.epochs - n_aug) * clean,
                     "rounds": times[r.name]})
    base = rows[0]["projected_train_s"]
    for row in rows:
        row["relative_to_first"] = row["projected_train_s"] / base
    C.print_table(rows, [("recipe", "recipe", "s"), ("epochs", "epochs", "d"),
                         ("augmented_epoch_s", "aug s/epoch", ".1f"),
                         ("clean_epoch_s", "clean s/epoch", ".1f"),
                         ("projected_train_s", "projected s", ".0f"),
                         ("relative_to_first", "x first", ".2f")],
                  title=f"training time per recipe, threads={args.threads or 'recipe'}, "
                  f"load {C.load_average()}")
    C.write_result("recipe_epochs", {"threads": args.threads, "rounds": rounds,
                                     "limit_train": limit, "recipes": rows},
                   quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()

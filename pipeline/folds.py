"""`split`: the fold columns every head trains and validates on (folds.csv)."""
import os

from invoke import task

from pipeline import arguments, context


def split_stage(ctx, seed=None, stratified=None):
    """folds.csv: rt0..rt<columns-1>, each a seeded, shuffled 5-fold split of train.csv."""
    from shared.contract.validate import read_table
    from shared.method.folds import make_folds, write_folds

    seed = ctx.seed if seed is None else int(seed)
    columns = ctx.config["folds"]["columns"]
    stratified = bool(ctx.config["folds"]["stratified"] if stratified is None else stratified)
    train_csv = os.path.join(ctx.paths["dataset"], "train.csv")
    stage = ctx.stage("split", [train_csv], [ctx.paths["folds"]],
                      {"seed": seed, "stratified": stratified, "columns": columns})
    if stage.needed():
        rows = [row for _, row in read_table(train_csv, ["image", "label"], "train.csv")]
        images, labels = [r["image"] for r in rows], [int(r["label"]) for r in rows]
        write_folds(ctx.paths["folds"], images, labels,
                    make_folds(images, labels, seed, columns, stratified=stratified))
        stage.done()


@task(help={"seed": "seed of the fold columns (default: invoke.yaml seed)",
            "stratified": "deal each identity's images over the folds", "workspace": "workspace folder"})
def split(c, seed=None, stratified=None, workspace=None):
    """Write folds.csv: rt0..rt29, each a seeded, shuffled 5-fold split of train.csv."""
    seed = arguments.integer(seed, "--seed", minimum=0)
    split_stage(context.from_task(c, workspace), seed, stratified)
